import type { HandoffClaims } from '../../sidecar/src/kong/handoff-format.js';

// Fixed handoff tokens, used by the plugin's tests (signing) and the sidecar's tests
// (verifying), so both sides are held to the same bytes. Changing the format means changing
// these literals on purpose.

export const VECTOR_SECRET = 'kong-grip-test-vector-secret-0123456789';

export interface HandoffVector {
  name: string;
  claims: HandoffClaims;
  /** The canonical JSON the payload part decodes to. */
  payloadJson: string;
  token: string;
}

export const HANDOFF_VECTORS: readonly HandoffVector[] = [
  {
    name: 'route-scoped config, consumer with username and custom id',
    claims: {
      iat: 1767225600, nonce: 'AAECAwQFBgcICQoLDA0ODw', origin: 'http://origin.internal:8080',
      routeId: '7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00', serviceId: '3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66',
      pluginId: 'c0ffee00-1234-4abc-8def-0123456789ab',
      consumer: { id: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', username: 'web-app', customId: 'tenant-42' },
    },
    payloadJson: '{"iat":1767225600,"nonce":"AAECAwQFBgcICQoLDA0ODw","origin":"http://origin.internal:8080","route":"7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00","service":"3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66","plugin":"c0ffee00-1234-4abc-8def-0123456789ab","consumer":{"id":"a1b2c3d4-e5f6-4711-8899-aabbccddeeff","username":"web-app","custom_id":"tenant-42"}}',
    token: 'v1.eyJpYXQiOjE3NjcyMjU2MDAsIm5vbmNlIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9EdyIsIm9yaWdpbiI6Imh0dHA6Ly9vcmlnaW4uaW50ZXJuYWw6ODA4MCIsInJvdXRlIjoiN2YxYzJhOWUtMGI1ZC00YzFlLTlhM2YtMmQ4ZTZiNGMxYTAwIiwic2VydmljZSI6IjNiNmQ5ZjIxLTVjNGUtNGE3Yi04ZTJkLTFmMGE5YzhiN2Q2NiIsInBsdWdpbiI6ImMwZmZlZTAwLTEyMzQtNGFiYy04ZGVmLTAxMjM0NTY3ODlhYiIsImNvbnN1bWVyIjp7ImlkIjoiYTFiMmMzZDQtZTVmNi00NzExLTg4OTktYWFiYmNjZGRlZWZmIiwidXNlcm5hbWUiOiJ3ZWItYXBwIiwiY3VzdG9tX2lkIjoidGVuYW50LTQyIn19.WvgRceftJdCOqjq2BxHyc_zCEodm5rfTXJoS7VtsVac',
  },
  {
    name: 'service-scoped config, no consumer, origin with a base path',
    claims: {
      iat: 1767225600, nonce: 'ZZZZZZZZZZZZZZZZZZZZZZ', origin: 'https://api.example.test/app',
      routeId: null, serviceId: '3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66',
      pluginId: 'c0ffee00-1234-4abc-8def-0123456789ab', consumer: null,
    },
    payloadJson: '{"iat":1767225600,"nonce":"ZZZZZZZZZZZZZZZZZZZZZZ","origin":"https://api.example.test/app","route":null,"service":"3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66","plugin":"c0ffee00-1234-4abc-8def-0123456789ab","consumer":null}',
    token: 'v1.eyJpYXQiOjE3NjcyMjU2MDAsIm5vbmNlIjoiWlpaWlpaWlpaWlpaWlpaWlpaWlpaWiIsIm9yaWdpbiI6Imh0dHBzOi8vYXBpLmV4YW1wbGUudGVzdC9hcHAiLCJyb3V0ZSI6bnVsbCwic2VydmljZSI6IjNiNmQ5ZjIxLTVjNGUtNGE3Yi04ZTJkLTFmMGE5YzhiN2Q2NiIsInBsdWdpbiI6ImMwZmZlZTAwLTEyMzQtNGFiYy04ZGVmLTAxMjM0NTY3ODlhYiIsImNvbnN1bWVyIjpudWxsfQ.otnmMSO3I-pN4uoobUOLNc8DTIzhEafnIR4B0HUMucU',
  },
  {
    name: 'consumer username with non-ASCII, quotes, a comma and a newline; no custom id',
    claims: {
      iat: 1767225661, nonce: '-_-_-_-_-_-_-_-_-_-_-_', origin: 'http://origin:8080',
      routeId: '7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00', serviceId: null,
      pluginId: 'c0ffee00-1234-4abc-8def-0123456789ab',
      consumer: { id: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', username: 'Zoë, "the admin"\nline2', customId: null },
    },
    payloadJson: '{"iat":1767225661,"nonce":"-_-_-_-_-_-_-_-_-_-_-_","origin":"http://origin:8080","route":"7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00","service":null,"plugin":"c0ffee00-1234-4abc-8def-0123456789ab","consumer":{"id":"a1b2c3d4-e5f6-4711-8899-aabbccddeeff","username":"Zoë, \\"the admin\\"\\nline2","custom_id":null}}',
    token: 'v1.eyJpYXQiOjE3NjcyMjU2NjEsIm5vbmNlIjoiLV8tXy1fLV8tXy1fLV8tXy1fLV8tXyIsIm9yaWdpbiI6Imh0dHA6Ly9vcmlnaW46ODA4MCIsInJvdXRlIjoiN2YxYzJhOWUtMGI1ZC00YzFlLTlhM2YtMmQ4ZTZiNGMxYTAwIiwic2VydmljZSI6bnVsbCwicGx1Z2luIjoiYzBmZmVlMDAtMTIzNC00YWJjLThkZWYtMDEyMzQ1Njc4OWFiIiwiY29uc3VtZXIiOnsiaWQiOiJhMWIyYzNkNC1lNWY2LTQ3MTEtODg5OS1hYWJiY2NkZGVlZmYiLCJ1c2VybmFtZSI6Ilpvw6ssIFwidGhlIGFkbWluXCJcbmxpbmUyIiwiY3VzdG9tX2lkIjpudWxsfX0.j0edY8763hEx1k7CXjtI_BSlvo9N8HHwtNJ8Q_iHVuI',
  },
];
