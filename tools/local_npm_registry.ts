/**
 * A one-package npm registry on 127.0.0.1, serving a tarball made by
 * `npm pack`, so that the consumer check installs the platform package the
 * way users do (`deno add npm:...`) without a network.
 *
 * @module
 */

/** A running registry; `url` goes into NPM_CONFIG_REGISTRY. */
export interface LocalRegistry extends AsyncDisposable {
  url: string;
}

/** Serves `tarball` (package `name` at `version`) until disposed. */
export async function serveTarball(
  tarball: string,
  name: string,
  version: string,
): Promise<LocalRegistry> {
  const bytes = await Deno.readFile(tarball);
  const sha512 = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
  const sha1 = new Uint8Array(await crypto.subtle.digest("SHA-1", bytes));
  const shasum = Array.from(sha1, (b) => b.toString(16).padStart(2, "0")).join("");
  let origin = "";
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request): Response => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      if (path === `/${name}`) {
        const tarballUrl = `${origin}/${name}/-/${version}.tgz`;
        return Response.json({
          name,
          "dist-tags": { latest: version },
          versions: {
            [version]: {
              name,
              version,
              dist: {
                tarball: tarballUrl,
                shasum,
                integrity: `sha512-${btoa(String.fromCharCode(...sha512))}`,
              },
            },
          },
        });
      }
      if (path === `/${name}/-/${version}.tgz`) return new Response(bytes);
      return new Response("not found", { status: 404 });
    },
  );
  origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    url: `${origin}/`,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
