//! The management API's scopes: what a management token may be granted.

pub const READ_CLIENTS: &str = "read:clients";
pub const CREATE_CLIENTS: &str = "create:clients";
pub const UPDATE_CLIENTS: &str = "update:clients";
pub const DELETE_CLIENTS: &str = "delete:clients";
pub const READ_CLIENT_GRANTS: &str = "read:client_grants";
pub const CREATE_CLIENT_GRANTS: &str = "create:client_grants";
pub const UPDATE_CLIENT_GRANTS: &str = "update:client_grants";
pub const DELETE_CLIENT_GRANTS: &str = "delete:client_grants";
pub const READ_RESOURCE_SERVERS: &str = "read:resource_servers";
pub const CREATE_RESOURCE_SERVERS: &str = "create:resource_servers";
pub const UPDATE_RESOURCE_SERVERS: &str = "update:resource_servers";
pub const DELETE_RESOURCE_SERVERS: &str = "delete:resource_servers";
pub const READ_RULES: &str = "read:rules";
pub const CREATE_RULES: &str = "create:rules";
pub const UPDATE_RULES: &str = "update:rules";
pub const DELETE_RULES: &str = "delete:rules";
pub const READ_SIGNING_KEYS: &str = "read:signing_keys";
pub const UPDATE_SIGNING_KEYS: &str = "update:signing_keys";
pub const READ_LOGS: &str = "read:logs";
/// The audit trail of management changes (apart from `read:logs`: rule logs are for rule
/// authors, the trail of who changed what is for administrators).
pub const READ_AUDIT: &str = "read:audit";

/// Every management scope; the bootstrap client is granted all of them.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    READ_CLIENTS,
    CREATE_CLIENTS,
    UPDATE_CLIENTS,
    DELETE_CLIENTS,
    READ_CLIENT_GRANTS,
    CREATE_CLIENT_GRANTS,
    UPDATE_CLIENT_GRANTS,
    DELETE_CLIENT_GRANTS,
    READ_RESOURCE_SERVERS,
    CREATE_RESOURCE_SERVERS,
    UPDATE_RESOURCE_SERVERS,
    DELETE_RESOURCE_SERVERS,
    READ_RULES,
    CREATE_RULES,
    UPDATE_RULES,
    DELETE_RULES,
    READ_SIGNING_KEYS,
    UPDATE_SIGNING_KEYS,
    READ_LOGS,
    READ_AUDIT,
];
