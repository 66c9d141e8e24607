// A Node.js function that streams its answer with awslambda.streamifyResponse.
// With "waitFor" it writes its first chunk, then waits until that object
// exists in S3 (the test puts it once it has read the first chunk), which
// proves the chunk left before the function finished.
import { S3Client, HeadObjectCommand } from "@aws-sdk/client-s3";
import { once } from "node:events";

const s3 = new S3Client({ forcePathStyle: true });

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write("first chunk\n");
  if (event.waitFor) {
    for (;;) {
      try {
        await s3.send(new HeadObjectCommand({ Bucket: event.waitFor.bucket, Key: event.waitFor.key }));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  for (let i = 1; i < (event.chunks ?? 1); i++) {
    responseStream.write(`chunk ${i}\n`);
    if (event.gapMs) await new Promise((r) => setTimeout(r, event.gapMs));
  }
  if (event.fail) throw new Error("broke after some chunks");
  if (event.mb) {
    const buf = Buffer.alloc(1 << 20, 97);
    for (let i = 0; i < event.mb; i++) {
      if (!responseStream.write(buf)) await once(responseStream, "drain");
    }
  }
  responseStream.end();
});
