// The same function in the callback style (handler callback.handler).
exports.handler = function (event, context, callback) {
  console.log("callback style, request", context.awsRequestId);
  if (event.fail) {
    callback(new RangeError("out of range on purpose"));
    return;
  }
  setTimeout(() => callback(null, { message: `hello, ${event.name || "world"}`, style: "callback" }), 5);
};
