// Answers event.mb (or a URL's ?mb) MiB: streamed when STREAM is set,
// else as one buffered function URL response.
const mbOf = (event) => Number(event?.queryStringParameters?.mb ?? event?.mb ?? 1);

export const buffered = async (event) => ({ statusCode: 200, headers: { "Content-Type": "text/plain" }, body: "a".repeat(mbOf(event) << 20) });

export const streamed = awslambda.streamifyResponse(async (event, responseStream) => {
  const out = awslambda.HttpResponseStream.from(responseStream, { statusCode: 200, headers: { "Content-Type": "text/plain" } });
  const chunk = Buffer.alloc(64 << 10, 97);
  for (let i = 0; i < mbOf(event) * 16; i++) {
    if (!out.write(chunk)) await new Promise((r) => out.once("drain", r));
  }
  out.end();
});
