# The seed README's "实际应用场景 2. 性能监控" (performance monitoring). The lines marked
# "added" give it imports, the get_memory_usage helper it calls, a route that records
# queries into g.sql_queries, and a server to run on.
import resource  # added
import time  # added

from tokenginx import Server, Route, Middleware, g, Logger  # added

server = Server()  # added


class PerformanceMiddleware(Middleware):
    def process_request(self, request):
        g.start_time = time.time()
        g.sql_queries = []
        return None
    
    def process_response(self, request, response):
        duration = time.time() - g.start_time
        metrics = {
            "duration": duration,
            "sql_queries": len(g.sql_queries),
            "memory_usage": self.get_memory_usage()
        }
        Logger.info(f"Performance metrics: {metrics}")
        return response

    def get_memory_usage(self):  # added: peak resident set size, in KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


server.middleware_manager.add_middleware(PerformanceMiddleware())  # added


@Route.register("/report", method="GET")  # added
def report(request):
    g.sql_queries.append("SELECT count(*) FROM sessions")
    g.sql_queries.append("SELECT count(*) FROM users")
    return {"queries": list(g.sql_queries)}


server.run()  # added
