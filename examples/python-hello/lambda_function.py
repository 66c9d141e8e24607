"""A Python Lambda function. Deploy with:

    stratus deploy python-hello examples/python-hello
"""


def lambda_handler(event, context):
    print("event", event)
    if event.get("fail") == "zero":
        return 1 / 0  # raises ZeroDivisionError
    return {
        "message": "hello, %s" % event.get("name", "world"),
        "requestId": context.aws_request_id,
        "function": context.function_name,
        "memoryLimitInMB": int(context.memory_limit_in_mb),
        "remainingMs": context.get_remaining_time_in_millis(),
    }
