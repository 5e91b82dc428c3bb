// The KVS WebRTC JS SDK's SignalingClient (npm amazon-kinesis-video-streams-webrtc), unmodified,
// against kvs-emulator. Node has no WebSocket global here, so the `ws` package stands in (the SDK
// falls back to it itself). The emulator's CA is trusted through NODE_EXTRA_CA_CERTS.
//
// Env: KVS_WSS, KVS_CHANNEL_ARN, KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, KVS_CLIENT_ID (optional).
// Prints "open" when connected, then "offer <json>" for the first SDP offer, and exits 0.
globalThis.WebSocket = globalThis.WebSocket || require('ws');
const { SignalingClient, Role } = require('amazon-kinesis-video-streams-webrtc');

const clientId = process.env.KVS_CLIENT_ID || undefined;
const client = new SignalingClient({
  channelARN: process.env.KVS_CHANNEL_ARN,
  channelEndpoint: process.env.KVS_WSS,
  role: clientId ? Role.VIEWER : Role.MASTER,
  clientId,
  region: process.env.KVS_REGION,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
  },
  systemClockOffset: 0,
});

const timer = setTimeout(() => {
  console.error('timed out waiting for the storage offer');
  process.exit(2);
}, 20000);

client.on('open', () => console.log('open'));
client.on('sdpOffer', (offer, senderClientId) => {
  console.log('offer ' + JSON.stringify({ type: offer.type, sdp: offer.sdp, senderClientId: senderClientId || null }));
  clearTimeout(timer);
  client.close();
  process.exit(0);
});
client.on('error', (err) => {
  console.error('signaling error: ' + (err && err.message ? err.message : err));
  process.exit(3);
});
client.open();
