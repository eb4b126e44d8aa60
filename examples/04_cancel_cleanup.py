"""Cancel a sleeping thread: it catches ThreadCancelled, cleans up, and re-raises."""

import threading

import threadpatch

log = []
connected = threading.Event()


def worker() -> None:
    print("  worker: connecting, then sleeping for an hour")
    log.append("connected")
    connected.set()
    try:
        threadpatch.sleep(3600)
    except threadpatch.ThreadCancelled:
        print("  worker: cancelled! saying goodbye and closing the connection")
        log.append("closed")
        raise  # let the cancellation end the thread
    finally:
        print("  worker: finally block runs")


t = threadpatch.spawn(worker)
connected.wait()  # cancelling just before it sleeps works too: cancellation is sticky
print("main: cancelling the worker")
done = t.cancel()  # waits until the thread has ended
print(f"main: cancel() returned {done}; t.cancelled={t.cancelled}; log={log}")
assert t.cancelled and log == ["connected", "closed"]

print("\ndeadlines work the same way:")
try:
    with threadpatch.timeout_after(0.1):
        threadpatch.sleep(3600)
except threadpatch.ThreadTimeout as e:
    print(f"  timeout_after(0.1) raised {type(e).__name__}")
    print(f"  which is a TimeoutError: {isinstance(e, TimeoutError)}")
