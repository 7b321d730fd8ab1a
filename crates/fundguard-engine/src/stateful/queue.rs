//! The queue a stateful rule's records wait in for the watermark, released smallest first
//! (for records: event time, then log position, then arrival).
//!
//! Records mostly arrive in that order already — a batch is in log order and commit times
//! grow along the log — so the queue keeps such a sorted run in a deque (push and pop
//! O(1), nothing moved twice) and only the records that arrive out of order in a heap;
//! popping takes the smaller of the two fronts, which is the smallest of all because both
//! are sorted. A heap alone cost ~1,000 instructions a pop in a 130-rule run (records are
//! large, and sifting moves them).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

pub(crate) struct EventQueue<T> {
    /// Records that arrived in order: sorted, smallest at the front.
    run: VecDeque<T>,
    /// Records that arrived before a larger one still waiting.
    heap: BinaryHeap<Reverse<T>>,
}

impl<T: Ord> EventQueue<T> {
    pub(crate) fn new() -> EventQueue<T> {
        EventQueue { run: VecDeque::new(), heap: BinaryHeap::new() }
    }

    /// A queue holding `heap`'s records (a checkpoint keeps the queue as one heap).
    pub(crate) fn from_heap(heap: BinaryHeap<Reverse<T>>) -> EventQueue<T> {
        EventQueue { run: VecDeque::new(), heap }
    }

    pub(crate) fn push(&mut self, item: T) {
        match self.run.back() {
            Some(last) if *last > item => self.heap.push(Reverse(item)),
            _ => self.run.push_back(item),
        }
    }

    /// Whether the smallest record comes from the run (rather than the heap).
    fn run_first(&self) -> bool {
        match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) => a <= b,
            (a, _) => a.is_some(),
        }
    }

    /// The smallest record.
    pub(crate) fn peek(&self) -> Option<&T> {
        if self.run_first() { self.run.front() } else { self.heap.peek().map(|r| &r.0) }
    }

    /// Takes the smallest record.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.run_first() { self.run.pop_front() } else { self.heap.pop().map(|r| r.0) }
    }

    pub(crate) fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }
}

impl<T: Ord + Clone> EventQueue<T> {
    /// Every record as one heap, for a checkpoint (the form checkpoints have always held).
    pub(crate) fn to_heap(&self) -> BinaryHeap<Reverse<T>> {
        let mut heap = self.heap.clone();
        heap.extend(self.run.iter().cloned().map(Reverse));
        heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pushes and pops in any order release exactly what a plain heap would.
        #[test]
        fn releases_what_a_heap_would(ops in proptest::collection::vec(proptest::option::of(0u8..20), 0..200)) {
            let mut queue = EventQueue::new();
            let mut heap = BinaryHeap::new();
            for (seq, op) in ops.into_iter().enumerate() {
                match op {
                    Some(time) => {
                        queue.push((time, seq));
                        heap.push(Reverse((time, seq)));
                    }
                    None => prop_assert_eq!(queue.pop(), heap.pop().map(|r| r.0)),
                }
                prop_assert_eq!(queue.peek(), heap.peek().map(|r| &r.0));
                prop_assert_eq!(queue.len(), heap.len());
            }
            let snapshot = EventQueue::from_heap(queue.to_heap());
            prop_assert_eq!(snapshot.len(), heap.len());
            let mut snapshot = snapshot;
            while let Some(Reverse(expected)) = heap.pop() {
                prop_assert_eq!(snapshot.pop(), Some(expected));
            }
        }
    }
}
