# The seed README's "实际应用场景 3. 请求跟踪" (request tracing). The lines marked "added"
# give it imports, the process_data helper it calls and a server to run on.
import time  # added
import uuid  # added

from tokenginx import Server, Route, Middleware, g  # added

server = Server()  # added


class TracingMiddleware(Middleware):
    def process_request(self, request):
        g.trace_id = str(uuid.uuid4())
        g.span_id = str(uuid.uuid4())
        g.traces = []
        return None
    
    def process_response(self, request, response):
        if isinstance(response, dict):
            response["trace_id"] = g.trace_id
            response["traces"] = g.traces
        return response


def process_data():  # added
    return sum(range(1000))


server.middleware_manager.add_middleware(TracingMiddleware())  # added

@Route.register("/trace", method="GET")
def traced_endpoint(request):
    g.traces.append({"event": "processing", "time": time.time()})
    result = process_data()
    g.traces.append({"event": "completed", "time": time.time()})
    return {"data": result}

server.run()  # added
