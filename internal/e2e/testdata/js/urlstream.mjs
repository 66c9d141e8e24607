// A Node.js function URL handler that streams with HttpResponseStream:
// its status and headers first, then the body as written.
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 202,
    headers: { "Content-Type": "text/event-stream", "X-From": "node" },
    cookies: ["a=1"],
  });
  for (let i = 0; i < 3; i++) stream.write(`data: ${i}\n\n`);
  stream.end();
});
