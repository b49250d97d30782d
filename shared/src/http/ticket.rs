//! The feed ticket key of an instance ([`crate::domain::ticket`]): read
//! from the table once, then kept, so checking a ticket costs no read.

use std::sync::{Arc, Mutex};

use crate::domain::ticket::TicketKey;
use crate::ports::{StoreError, TicketStore};

/// The table's ticket key, read (or, the very first time, created) once
/// per instance and then kept: checking a ticket costs no read after the
/// first. To replace the key, delete its item and deploy (new instances
/// read the new one); tickets sealed with the old key are then refused,
/// and pages ask for new ones.
#[derive(Debug, Default)]
pub struct TicketKeys(Mutex<Option<Arc<TicketKey>>>);

impl TicketKeys {
    pub async fn get<S: TicketStore>(&self, store: &S) -> Result<Arc<TicketKey>, StoreError> {
        if let Some(key) = self.kept()?.as_ref() {
            return Ok(key.clone());
        }
        // Two requests of a cold instance may both read: the same key.
        let bytes = store.ticket_key().await?;
        let key = TicketKey::new(&bytes).map_err(|e| StoreError::internal("the ticket key", e))?;
        let key = Arc::new(key);
        *self.kept()? = Some(key.clone());
        Ok(key)
    }

    /// Drops the kept key: the next ticket reads it again, as a new
    /// instance does.
    pub fn forget(&self) {
        if let Ok(mut kept) = self.kept() {
            *kept = None;
        }
    }

    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Option<Arc<TicketKey>>>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::internal_because("ticket key lock poisoned"))
    }
}
