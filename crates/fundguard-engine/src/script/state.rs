//! A script's keyed state: per key, the `state` map its last call left, with the event time
//! it was last touched. Expiry (`state_ttl`) is decided per row from event times, so it does
//! not depend on batching; a sweep reclaims memory when the map has doubled.

use std::sync::Arc;

use fundguard_core::EventTime;
use serde::{Deserialize, Serialize};

use super::values::Data;
use crate::FastMap;

/// One key's state. Shared with checkpoint copies: replaced, never edited in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub touched: EventTime,
    pub fields: Vec<(String, Data)>,
    /// An estimate of the bytes it holds.
    pub bytes: usize,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct KeyedState {
    entries: FastMap<String, Arc<Entry>>,
    sweep_at: usize,
    /// The estimated bytes of all entries.
    bytes: usize,
}

impl KeyedState {
    /// The state of `key` at a row whose expiry horizon is `idle_before`: empty when the key
    /// has none, or was last touched before it.
    pub(crate) fn get(&self, key: &str, idle_before: EventTime) -> Option<&[(String, Data)]> {
        self.entries.get(key).filter(|e| e.touched >= idle_before).map(|e| e.fields.as_slice())
    }

    /// Keeps what a call left in `key`'s state (an empty map keeps nothing).
    pub(crate) fn put(&mut self, key: &str, touched: EventTime, fields: Vec<(String, Data)>, idle_before: EventTime) {
        if fields.is_empty() {
            if let Some(old) = self.entries.remove(key) {
                self.bytes -= old.bytes;
            }
            return;
        }
        let bytes = 96 + key.len() + fields.iter().map(|(k, v)| k.len() + v.bytes()).sum::<usize>();
        self.bytes += bytes;
        if let Some(old) = self.entries.insert(key.to_string(), Arc::new(Entry { touched, fields, bytes })) {
            self.bytes -= old.bytes;
        }
        if self.entries.len() > self.sweep_at {
            self.forget(|e| e.touched < idle_before);
            self.sweep_at = (self.entries.len() * 2).max(1024);
        }
    }

    fn forget(&mut self, gone: impl Fn(&Entry) -> bool) {
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let go = gone(e);
            if go {
                freed += e.bytes;
            }
            !go
        });
        self.bytes -= freed;
    }

    /// Over the memory budget: drops about `keys` of the least recently touched keys.
    pub(crate) fn shed_oldest(&mut self, keys: usize) -> usize {
        let times = self.entries.values().map(|e| e.touched).collect();
        let Some(cutoff) = crate::stateful::shed_cutoff(times, keys) else { return 0 };
        let before = self.entries.len();
        self.forget(|e| e.touched <= cutoff);
        before - self.entries.len()
    }

    pub(crate) fn keys(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
