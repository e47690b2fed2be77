/**
 * A doubly linked list with O(1) removal of any node, for LRU orders and
 * free lists whose entries leave from the middle.
 *
 * @module
 */

/** A node; owned by at most one list at a time. */
export class ListNode<T> {
  prev: ListNode<T> | undefined = undefined;
  next: ListNode<T> | undefined = undefined;
  list: LinkedList<T> | undefined = undefined;
  constructor(readonly value: T) {}
}

/** Oldest at the head, newest at the tail. */
export class LinkedList<T> {
  head: ListNode<T> | undefined = undefined;
  tail: ListNode<T> | undefined = undefined;
  size = 0;

  /** Appends node (the newest); it must not be in a list. */
  push(node: ListNode<T>): void {
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    node.list = this;
    this.size++;
  }

  /** Unlinks node, which must be in this list. */
  remove(node: ListNode<T>): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = node.list = undefined;
    this.size--;
  }

  /** Moves node to the tail (most recently used). */
  touch(node: ListNode<T>): void {
    if (this.tail === node) return;
    this.remove(node);
    this.push(node);
  }

  /** Removes and returns the newest node's value. */
  pop(): T | undefined {
    const node = this.tail;
    if (!node) return undefined;
    this.remove(node);
    return node.value;
  }
}
