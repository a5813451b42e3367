// Puts the client's tier (from client.metadata) in the token, and refuses clients
// without one: InvalidRequestError gives 400 invalid_request.
/** @type {TokenhostRule} */
module.exports = function (client, scope, audience, context, cb) {
  var tier = client.metadata.tier;
  if (!tier) {
    return cb(new InvalidRequestError('client ' + client.id + ' has no tier in its metadata'));
  }
  cb(null, {
    scope: scope,
    'https://tokenhost.dev/tier': tier,
    'https://tokenhost.dev/tenant': client.tenant,
  });
};
