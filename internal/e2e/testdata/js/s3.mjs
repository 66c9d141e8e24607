// Drives Stratus's S3 with the AWS SDK for JavaScript v3: its default
// checksums, and streaming bodies sent aws-chunked with a trailing
// checksum. Prints "js s3 ok" when every step held.
import { Readable } from "node:stream";
import {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectCommand, DeleteBucketCommand,
} from "@aws-sdk/client-s3";

const endpoint = process.argv[2];
const s3 = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true });
const assert = (ok, what) => { if (!ok) { console.error("failed:", what); process.exit(1); } };

await s3.send(new CreateBucketCommand({ Bucket: "js-bucket" }));
await s3.send(new PutObjectCommand({ Bucket: "js-bucket", Key: "hello.txt", Body: "hello from javascript" }));
const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
// A stream of known length goes aws-chunked, its checksum in the trailer.
await s3.send(new PutObjectCommand({
  Bucket: "js-bucket", Key: "stream.bin", Body: Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]),
  ContentLength: big.length, ChecksumAlgorithm: "CRC32",
}));
const head = await s3.send(new HeadObjectCommand({ Bucket: "js-bucket", Key: "stream.bin", ChecksumMode: "ENABLED" }));
assert(head.ContentLength === big.length, "the streamed object's length is " + head.ContentLength);
assert(head.ContentEncoding === undefined || !head.ContentEncoding.includes("aws-chunked"), "aws-chunked kept as the object's encoding");
assert(head.ChecksumCRC32, "no CRC32 stored");
const got = await s3.send(new GetObjectCommand({ Bucket: "js-bucket", Key: "stream.bin", ChecksumMode: "ENABLED" }));
const bytes = Buffer.from(await got.Body.transformToByteArray());
assert(bytes.equals(big), "the streamed object came back different (framing stored?)");
const text = await (await s3.send(new GetObjectCommand({ Bucket: "js-bucket", Key: "hello.txt" }))).Body.transformToString();
assert(text === "hello from javascript", "text object: " + text);
const list = await s3.send(new ListObjectsV2Command({ Bucket: "js-bucket" }));
assert(list.KeyCount === 2, "list: " + list.KeyCount);
for (const Key of ["hello.txt", "stream.bin"]) await s3.send(new DeleteObjectCommand({ Bucket: "js-bucket", Key }));
await s3.send(new DeleteBucketCommand({ Bucket: "js-bucket" }));
console.log("js s3 ok");
