//! The management API's scopes: what a management token may be granted, each also a type
//! so that a handler names the scope it needs in its signature (`Authorized<ReadClients>`).

/// A management scope as a type, for [`Authorized`](super::auth::Authorized).
pub trait Scope {
    const NAME: &'static str;
}

/// Declares each scope once: its string constant, its type, and its place in
/// [`MANAGEMENT_SCOPES`].
macro_rules! scopes {
    ($($(#[$doc:meta])* $name:ident, $ty:ident = $value:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: &str = $value;
            #[doc = concat!("`", $value, "` as a type.")]
            pub enum $ty {}
            impl Scope for $ty {
                const NAME: &'static str = $name;
            }
        )*
        /// Every management scope; the bootstrap client is granted all of them.
        pub const MANAGEMENT_SCOPES: &[&str] = &[$($name),*];
    };
}

scopes! {
    READ_CLIENTS, ReadClients = "read:clients";
    CREATE_CLIENTS, CreateClients = "create:clients";
    UPDATE_CLIENTS, UpdateClients = "update:clients";
    DELETE_CLIENTS, DeleteClients = "delete:clients";
    READ_CLIENT_GRANTS, ReadClientGrants = "read:client_grants";
    CREATE_CLIENT_GRANTS, CreateClientGrants = "create:client_grants";
    UPDATE_CLIENT_GRANTS, UpdateClientGrants = "update:client_grants";
    DELETE_CLIENT_GRANTS, DeleteClientGrants = "delete:client_grants";
    READ_RESOURCE_SERVERS, ReadResourceServers = "read:resource_servers";
    CREATE_RESOURCE_SERVERS, CreateResourceServers = "create:resource_servers";
    UPDATE_RESOURCE_SERVERS, UpdateResourceServers = "update:resource_servers";
    DELETE_RESOURCE_SERVERS, DeleteResourceServers = "delete:resource_servers";
    READ_RULES, ReadRules = "read:rules";
    CREATE_RULES, CreateRules = "create:rules";
    UPDATE_RULES, UpdateRules = "update:rules";
    DELETE_RULES, DeleteRules = "delete:rules";
    READ_SIGNING_KEYS, ReadSigningKeys = "read:signing_keys";
    UPDATE_SIGNING_KEYS, UpdateSigningKeys = "update:signing_keys";
    READ_LOGS, ReadLogs = "read:logs";
    /// The audit trail of management changes (apart from `read:logs`: rule logs are for rule
    /// authors, the trail of who changed what is for administrators).
    READ_AUDIT, ReadAudit = "read:audit";
}
