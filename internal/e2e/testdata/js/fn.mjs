// A Node.js function that writes and reads an object with the JavaScript
// SDK v3, packaged with its node_modules as a Lambda deployment package
// would be; the endpoint comes from AWS_ENDPOINT_URL.
import { S3Client, PutObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";

const s3 = new S3Client({ forcePathStyle: true });

export const handler = async (event) => {
  await s3.send(new PutObjectCommand({ Bucket: event.bucket, Key: event.key, Body: event.body }));
  const got = await s3.send(new GetObjectCommand({ Bucket: event.bucket, Key: event.key }));
  return await got.Body.transformToString();
};
