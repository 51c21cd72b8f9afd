// The benchmark's peer: panva's oidc-provider, in memory, one process, with one
// client_credentials client and token introspection enabled. Prints "ready" once listening.
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT || 8100);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['openid', 'accounts:read'],
});
// silence the default error listener's console output under load
provider.on('server_error', () => {});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
