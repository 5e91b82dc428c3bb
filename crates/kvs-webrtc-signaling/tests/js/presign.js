// Presign a KVS signaling URL with the AWS KVS WebRTC JS SDK's own SigV4RequestSigner, for
// tests/presign_matches_js_signer.rs. Input: one JSON object on argv[2]. Output: the URL.
const { SigV4RequestSigner } = require('amazon-kinesis-video-streams-webrtc');

const input = JSON.parse(process.argv[2]);
const credentials = { accessKeyId: input.accessKeyId, secretAccessKey: input.secretAccessKey };
if (input.sessionToken) credentials.sessionToken = input.sessionToken;
const query = { 'X-Amz-ChannelARN': input.channelArn };
if (input.clientId) query['X-Amz-ClientId'] = input.clientId;

new SigV4RequestSigner(input.region, credentials)
  .getSignedURL(input.endpoint, query, new Date(input.epochMillis))
  .then((url) => console.log(url))
  .catch((err) => { console.error(err); process.exit(1); });
