//! The verified directory view, re-read only when the stored head moves:
//! the candidate tasks consult it every second, and verifying the whole
//! directory is not free on a 10,000-node mesh.

use std::sync::{Arc, Mutex};

use gondwana_core::directory::{Head, View};
use gondwana_core::keys::PublicKey;

use crate::daemon::drive::{blocking, joined};
use crate::store::StateStore;

#[derive(Default)]
pub struct ViewCache(Mutex<Option<(Head, Arc<View>)>>);

impl ViewCache {
    /// The view of the stored directory signed by `authority`, and whether
    /// it changed since the last call.
    pub async fn get(
        &self,
        store: &Arc<StateStore>,
        authority: PublicKey,
    ) -> Result<(Arc<View>, bool), String> {
        let head = store.directory_head().map_err(|e| e.to_string())?;
        if let Ok(cached) = self.0.lock()
            && let Some((at, view)) = cached.as_ref()
            && *at == head
        {
            return Ok((view.clone(), false));
        }
        let store = store.clone();
        let (view, head) = joined(blocking(move || store.directory_view(&authority)).await)?;
        let view = Arc::new(view);
        if let Ok(mut cached) = self.0.lock() {
            *cached = Some((head, view.clone()));
        }
        Ok((view, true))
    }

    /// The view last read, without looking at the store (`None`: never
    /// read): for sync callers that a refresh just before keeps current.
    pub fn peek(&self) -> Option<Arc<View>> {
        self.0
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|(_, v)| v.clone()))
    }
}
