// Refuses every token: a plain Error is a denial (403 access_denied, message as description).
/** @type {TokenhostRule} */
module.exports = function (client, scope, audience, context, cb) {
  console.log('denying', client.id, 'for', audience);
  cb(new Error('access denied'));
};
