// A Node.js Lambda function. Deploy with:
//   stratus deploy node-hello examples/node-hello
export const handler = async (event, context) => {
  console.log("event", JSON.stringify(event));
  if (event.fail === "type") {
    null.boom(); // throws a TypeError
  }
  if (event.fail === "reject") {
    throw new Error("rejected on purpose");
  }
  return {
    message: `hello, ${event.name ?? "world"}`,
    requestId: context.awsRequestId,
    function: context.functionName,
    memoryLimitInMB: context.memoryLimitInMB,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};
