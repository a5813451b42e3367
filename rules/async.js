// An async rule: the token is the value its promise resolves with.
/** @type {TokenhostRule} */
module.exports = async function (client, scope, audience, context) {
  const region = await Promise.resolve(context.request.body.region || 'eu');
  return {
    scope: scope.filter((s) => s !== 'admin'),
    'https://tokenhost.dev/region': region,
    'https://tokenhost.dev/issued_by': 'async rule',
  };
};
