//! The store's traits in memory, with DynamoDB's conditions (a name claimed once per tenant,
//! writes conditioned on the version read, idempotent answers until they expire, the rate
//! bucket's two conditional moves, shard leases): the handlers' unit tests run on it without the
//! emulator. The integration tests keep DynamoDB's own wire for what only it can show.

use super::{
    ConnectorReader, ConnectorWriter, DueConnectors, History, HistoryItem, IdempotentAnswers, Page,
    RateBucket, Remembered, ShardLeases, StoreError, TunnelKeyRecord, TunnelKeys,
};
use crate::model::Connector;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Tables {
    /// (tenant, id) → connector, in id order as DynamoDB's sort key keeps them.
    connectors: BTreeMap<(String, String), Connector>,
    /// (tenant, lowercased name) → connector id.
    names: HashMap<(String, String), String>,
    counts: HashMap<String, i64>,
    answers: HashMap<(String, String), Remembered>,
    rate: HashMap<String, u64>,
    leases: HashMap<String, (String, u64)>,
    tunnel_keys: HashMap<String, TunnelKeyRecord>,
    /// (tenant, connector, result id) → item, in key order as the table keeps them.
    results: BTreeMap<(String, String, String), HistoryItem>,
    /// Writes that fail with `Conflict` before succeeding (a concurrent writer, simulated).
    conflicts_ahead: usize,
}

/// An in-memory store; every call takes one lock, so each is atomic as DynamoDB's are.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// The next `n` replaces fail with `Conflict`, as when another writer got there first.
    pub fn conflict_next(&self, n: usize) {
        self.lock().conflicts_ahead = n;
    }

    /// The tenant's connector count as the table keeps it.
    pub fn count(&self, tenant: &str) -> i64 {
        self.lock().counts.get(tenant).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn name_of(c: &Connector) -> (String, String) {
    (c.tenant_id.clone(), c.name.to_lowercase())
}

fn key_of(c: &Connector) -> (String, String) {
    (c.tenant_id.clone(), c.id.clone())
}

impl ConnectorReader for MemoryStore {
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<Connector>, StoreError> {
        let key = (tenant.to_string(), id.to_string());
        Ok(self.lock().connectors.get(&key).cloned())
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Connector>, StoreError> {
        let t = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| t.connectors.get(k).cloned())
            .collect())
    }

    async fn page(
        &self,
        tenant: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError> {
        let t = self.lock();
        let mut mine = t
            .connectors
            .iter()
            .filter(|((owner, id), _)| owner == tenant && after.is_none_or(|a| id.as_str() > a))
            .map(|(_, c)| c.clone());
        let items: Vec<Connector> = mine.by_ref().take(limit).collect();
        Ok(Page {
            has_more: mine.next().is_some(),
            items,
            total: t.counts.get(tenant).copied().unwrap_or(0).max(0) as u64,
        })
    }
}

impl ConnectorWriter for MemoryStore {
    async fn insert(&self, c: &Connector, once: Option<&Remembered>) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.connectors.contains_key(&key_of(c)) {
            return Err(StoreError::AlreadyApplied);
        }
        if t.names.contains_key(&name_of(c)) {
            return Err(StoreError::NameTaken);
        }
        let now = crate::ids::unix_now();
        if let Some(r) = once {
            let live = t
                .answers
                .get(&(c.tenant_id.clone(), r.key.clone()))
                .is_some_and(|kept| kept.expires_at > now);
            if live {
                return Err(StoreError::KeyUsed);
            }
            t.answers
                .insert((c.tenant_id.clone(), r.key.clone()), r.clone());
        }
        t.names.insert(name_of(c), c.id.clone());
        *t.counts.entry(c.tenant_id.clone()).or_default() += 1;
        t.connectors.insert(key_of(c), c.clone());
        Ok(())
    }

    async fn replace(&self, old: &Connector, new: &Connector) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.conflicts_ahead > 0 {
            t.conflicts_ahead -= 1;
            return Err(StoreError::Conflict);
        }
        match t.connectors.get(&key_of(old)) {
            Some(current) if current.version == old.version => {}
            _ => return Err(StoreError::Conflict),
        }
        if name_of(old) != name_of(new) {
            if t.names.contains_key(&name_of(new)) {
                return Err(StoreError::NameTaken);
            }
            t.names.remove(&name_of(old));
            t.names.insert(name_of(new), new.id.clone());
        }
        t.connectors.insert(key_of(new), new.clone());
        Ok(())
    }

    async fn remove(&self, c: &Connector) -> Result<(), StoreError> {
        let mut t = self.lock();
        match t.connectors.get(&key_of(c)) {
            Some(current) if current.version == c.version => {}
            _ => return Err(StoreError::Conflict),
        }
        t.connectors.remove(&key_of(c));
        t.names.remove(&name_of(c));
        *t.counts.entry(c.tenant_id.clone()).or_default() -= 1;
        Ok(())
    }
}

impl History for MemoryStore {
    async fn put_result(&self, tenant: &str, item: &HistoryItem) -> Result<(), StoreError> {
        let key = (
            tenant.to_string(),
            item.connector_id.clone(),
            item.result_id.clone(),
        );
        self.lock().results.insert(key, item.clone());
        Ok(())
    }

    async fn results(
        &self,
        tenant: &str,
        connector: &str,
        before: Option<&str>,
        oldest: &str,
        limit: usize,
    ) -> Result<Vec<HistoryItem>, StoreError> {
        let t = self.lock();
        Ok(t.results
            .iter()
            .rev()
            .filter(|((tn, c, r), _)| tn == tenant && c == connector && r.as_str() >= oldest)
            .filter(|((_, _, r), _)| before.is_none_or(|b| r.as_str() < b))
            .take(limit)
            .map(|(_, item)| item.clone())
            .collect())
    }

    async fn newer_count(
        &self,
        tenant: &str,
        connector: &str,
        result: &str,
        oldest: &str,
    ) -> Result<usize, StoreError> {
        let t = self.lock();
        Ok(t.results
            .keys()
            .filter(|(tn, c, r)| tn == tenant && c == connector && r.as_str() >= oldest)
            .filter(|(_, _, r)| r.as_str() >= result)
            .count())
    }
}

impl TunnelKeys for MemoryStore {
    async fn tunnel_key(&self, tenant: &str) -> Result<Option<TunnelKeyRecord>, StoreError> {
        Ok(self.lock().tunnel_keys.get(tenant).cloned())
    }

    async fn put_tunnel_key(&self, tenant: &str, key: &TunnelKeyRecord) -> Result<(), StoreError> {
        match self.lock().tunnel_keys.entry(tenant.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(StoreError::Conflict),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(key.clone());
                Ok(())
            }
        }
    }

    async fn connector_and_tunnel_key(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(Option<Connector>, Option<TunnelKeyRecord>), StoreError> {
        let t = self.lock();
        let key = (tenant.to_string(), id.to_string());
        Ok((
            t.connectors.get(&key).cloned(),
            t.tunnel_keys.get(tenant).cloned(),
        ))
    }
}

impl IdempotentAnswers for MemoryStore {
    async fn recall(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<Remembered>, StoreError> {
        let t = self.lock();
        Ok(t.answers
            .get(&(tenant.to_string(), key.to_string()))
            .filter(|r| r.expires_at > now)
            .cloned())
    }
}

impl DueConnectors for MemoryStore {
    async fn due(&self, shard: &str, now: &str) -> Result<Vec<(String, String)>, StoreError> {
        let t = self.lock();
        let mut due: Vec<(&str, (String, String))> = t
            .connectors
            .values()
            .filter(|c| c.due_shard.as_deref() == Some(shard))
            .filter_map(|c| {
                let at = c.next_probe_at.as_deref()?;
                (at <= now).then(|| (at, key_of(c)))
            })
            .collect();
        due.sort();
        Ok(due.into_iter().map(|(_, k)| k).collect())
    }
}

impl ShardLeases for MemoryStore {
    async fn lease(
        &self,
        shard: &str,
        holder: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock();
        let free = match t.leases.get(shard) {
            None => true,
            Some((who, until)) => who == holder || *until <= now_ms,
        };
        if free {
            t.leases
                .insert(shard.to_string(), (holder.to_string(), until_ms));
        }
        Ok(free)
    }

    async fn release(&self, shard: &str, holder: &str) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.leases.get(shard).is_some_and(|(who, _)| who == holder) {
            t.leases.remove(shard);
        }
        Ok(())
    }
}

impl RateBucket for MemoryStore {
    async fn start_burst(
        &self,
        tenant: &str,
        now: u64,
        tat: u64,
        _expires_at: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        let mut t = self.lock();
        match t.rate.get(tenant) {
            Some(stored) if *stored > now => Ok(Err(*stored)),
            _ => {
                t.rate.insert(tenant.to_string(), tat);
                Ok(Ok(()))
            }
        }
    }

    async fn continue_burst(
        &self,
        tenant: &str,
        now: u64,
        step: u64,
        highest: u64,
        _expires_at: u64,
    ) -> Result<Result<u64, u64>, StoreError> {
        let mut t = self.lock();
        let stored = t.rate.get(tenant).copied().unwrap_or(0);
        if now < stored && stored <= highest {
            t.rate.insert(tenant.to_string(), stored + step);
            Ok(Ok(stored + step))
        } else {
            Ok(Err(stored))
        }
    }
}
