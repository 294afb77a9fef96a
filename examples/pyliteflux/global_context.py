# The seed README's "全局上下文使用" (request-scoped g) example. The seed's snippet uses
# Middleware, Logger and uuid without importing them, calls a hypothetical Database()
# and Cache(), and never adds DataMiddleware to the server: the lines marked "added"
# supply those so the example runs.
from tokenginx import Server, Route, g, Middleware, Logger
import uuid


class Database:  # added: the seed's "假设的数据库连接" (hypothetical database)
    def __init__(self):
        self.closed = False

    def query(self, sql):
        return [{"id": 1, "name": "user1"}] if not self.closed else None

    def close(self):
        self.closed = True


class Cache:  # added: the seed's "假设的缓存连接" (hypothetical cache)
    def __init__(self):
        self.data = {"users": ["user1"]}

    def get(self, key):
        return self.data.get(key)

    def close(self):
        self.data = {}


server = Server()

# 在中间件中设置数据
class DataMiddleware(Middleware):
    def process_request(self, request):
        g.db = Database()  # 假设的数据库连接
        g.cache = Cache()  # 假设的缓存连接
        return None
    
    def process_response(self, request, response):
        # 清理资源
        if hasattr(g, "db"):
            g.db.close()
        if hasattr(g, "cache"):
            g.cache.close()
        return response

server.middleware_manager.add_middleware(DataMiddleware())  # added

# 在路由中使用g对象
@Route.register("/data", method="GET")
def get_data(request):
    # 使用g对象中的资源
    data = g.db.query("SELECT * FROM users")
    cached_data = g.cache.get("users")
    
    return {
        "data": data,
        "cached": cached_data,
        "request_id": g.request_id
    }

# 在后台任务中使用g对象
@Route.register("/async", method="GET")
def async_task(request):
    def background_job():
        # 注意：后台任务有自己的g对象实例
        g.task_id = uuid.uuid4()
        Logger.info(f"Background task {g.task_id} started")
        
    request.bg.add(background_job)
    return {"message": "Task scheduled"}

server.run()
