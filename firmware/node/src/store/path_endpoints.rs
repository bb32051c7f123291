//! Node: per other node, the last endpoint its peer had a fresh handshake
//! at (docs/paths.md, "Cached on the state partition"), so a daemon
//! started while the hub is unreachable configures its direct paths at
//! once. Kept in the `enrolment` table (node data, no schema change) as
//! postcard `Vec<(NodeId, SocketAddr)>`; written only when it changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gondwana_core::NodeId;
use gondwana_core::ordered::map_from;

use super::schema::ENROLMENT;
use super::{StateStore, StoreError};

const KEY_PATH_ENDPOINTS: &str = "path_endpoints";

impl StateStore {
    /// The stored endpoints (empty when none are stored).
    pub fn path_endpoints(&self) -> Result<BTreeMap<NodeId, SocketAddr>, StoreError> {
        let txn = self.read()?;
        let Some(t) = txn.open_if_exists(ENROLMENT)? else {
            return Ok(BTreeMap::new());
        };
        let Some(raw) = t.get(KEY_PATH_ENDPOINTS)? else {
            return Ok(BTreeMap::new());
        };
        let list: Vec<(NodeId, SocketAddr)> = postcard::from_bytes(raw.value())
            .map_err(|e| self.corrupt(format!("stored path endpoints: {e}")))?;
        Ok(map_from(list))
    }

    pub fn save_path_endpoints(
        &self,
        endpoints: &BTreeMap<NodeId, SocketAddr>,
    ) -> Result<(), StoreError> {
        let list: Vec<(&NodeId, &SocketAddr)> = endpoints.iter().collect();
        let bytes = postcard::to_allocvec(&list)
            .map_err(|e| self.corrupt(format!("encoding path endpoints: {e}")))?;
        let txn = self.write()?;
        txn.open(ENROLMENT)?
            .insert(KEY_PATH_ENDPOINTS, bytes.as_slice())?;
        self.commit(txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    #[test]
    fn endpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
        assert!(store.path_endpoints().unwrap().is_empty());
        let map = BTreeMap::from([
            (
                NodeId::from_genesis_key(&[2; 32]),
                "192.0.2.2:51824".parse().unwrap(),
            ),
            (
                NodeId::from_genesis_key(&[3; 32]),
                "[2001:db8::3]:51825".parse().unwrap(),
            ),
        ]);
        store.save_path_endpoints(&map).unwrap();
        assert_eq!(store.path_endpoints().unwrap(), map);
    }
}
