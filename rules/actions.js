// An Actions-style rule (the successor platform's credentials-exchange trigger): puts the
// client's tier (from its client_metadata) in the token, refuses clients without one
// (400 invalid_request), and stamps when this server first issued the client a token,
// remembered in the rule's cache (kept by the host per rule, in memory, for an hour here).
/** @type {TokenhostAction} */
exports.onExecuteCredentialsExchange = async (event, api) => {
  const tier = event.client.metadata.tier;
  if (!tier) {
    api.access.deny('invalid_request', `client ${event.client.client_id} has no tier in its metadata`);
    return;
  }
  api.accessToken.setCustomClaim('https://tokenhost.dev/tier', tier);

  const key = `first-seen:${event.client.client_id}`;
  let firstSeen = api.cache.get(key)?.value;
  if (firstSeen === undefined) {
    firstSeen = new Date().toISOString();
    // A refused entry (over a limit) is reported, not thrown: the token is still issued.
    const stored = api.cache.set(key, firstSeen, { ttl: 60 * 60 * 1000 });
    if (stored.type === 'error') console.warn(`first-seen not cached: ${stored.message}`);
  }
  api.accessToken.setCustomClaim('https://tokenhost.dev/first_seen', firstSeen);
};
