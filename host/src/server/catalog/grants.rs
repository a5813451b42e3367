//! The catalog's client grants: found by client and audience (the token path), by id (a
//! change names a grant by id) and by audience (deleting an API deletes its grants).

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::ClientGrant;

/// A client's grants by audience. A client has a few, so a change copies them all.
type OfClient = Arc<HashMap<String, Arc<ClientGrant>>>;

#[derive(Debug, Clone, Default)]
pub struct Grants {
    by_client: imbl::HashMap<String, OfClient>,
    /// Where each grant is filed: (client_id, audience).
    by_id: imbl::HashMap<String, (String, String)>,
    /// Grant ids by audience.
    by_audience: imbl::HashMap<String, imbl::HashSet<String>>,
}

impl Grants {
    pub fn get(&self, client_id: &str, audience: &str) -> Option<&ClientGrant> {
        self.by_client
            .get(client_id)?
            .get(audience)
            .map(Arc::as_ref)
    }

    /// Every grant, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &ClientGrant> {
        self.by_client
            .values()
            .flat_map(|grants| grants.values().map(Arc::as_ref))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds or replaces a grant (by id; one filed elsewhere before is moved).
    pub(crate) fn put(&mut self, grant: ClientGrant) {
        self.remove(&grant.id);
        let id = grant.id.clone();
        let (client_id, audience) = (grant.client_id.clone(), grant.audience.clone());
        let mut of_client = self
            .by_client
            .get(&client_id)
            .map(|grants| HashMap::clone(grants))
            .unwrap_or_default();
        // A grant displaced here (the same client and audience, another id) is gone from
        // the store, which read this one (the pair is unique there) and never reuses an
        // id: it goes from every index now, and its own change will find nothing.
        if let Some(displaced) = of_client.insert(audience.clone(), Arc::new(grant)) {
            if displaced.id != id {
                self.by_id.remove(&displaced.id);
                self.unfile(&audience, &displaced.id);
            }
        }
        self.by_client
            .insert(client_id.clone(), Arc::new(of_client));
        self.by_audience
            .entry(audience.clone())
            .or_default()
            .insert(id.clone());
        self.by_id.insert(id, (client_id, audience));
    }

    /// Removes the grant with this id, if there is one.
    pub(crate) fn remove(&mut self, id: &str) {
        let Some((client_id, audience)) = self.by_id.remove(id) else {
            return;
        };
        if let Some(of_client) = self.by_client.get(&client_id) {
            if of_client.get(&audience).is_some_and(|g| g.id == id) {
                let mut of_client = HashMap::clone(of_client);
                of_client.remove(&audience);
                if of_client.is_empty() {
                    self.by_client.remove(&client_id);
                } else {
                    self.by_client.insert(client_id, Arc::new(of_client));
                }
            }
        }
        self.unfile(&audience, id);
    }

    fn unfile(&mut self, audience: &str, id: &str) {
        if let Some(ids) = self.by_audience.get_mut(audience) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_audience.remove(audience);
            }
        }
    }

    /// The ids of the grants filed under a client.
    pub(crate) fn ids_of_client(&self, client_id: &str) -> Vec<String> {
        self.by_client
            .get(client_id)
            .map(|grants| grants.values().map(|g| g.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The ids of the grants for an audience.
    pub(crate) fn ids_for_audience(&self, audience: &str) -> Vec<String> {
        self.by_audience
            .get(audience)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }
}
