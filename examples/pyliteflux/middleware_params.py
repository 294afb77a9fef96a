# The seed README's "中间件参数" (middleware with options). The lines marked "added" give
# it the imports it uses, a route to see the middleware at work, and server.run().
from tokenginx import Server, Route, Middleware  # added

class CustomMiddleware(Middleware):
    def __init__(self, **options):
        self.options = options
    
    def process_request(self, request):
        # 处理请求
        request.custom_attr = self.options.get("custom_attr")
        return None
    
    def process_response(self, request, response):
        # 处理响应
        if isinstance(response, dict):
            response["processed_by"] = self.options.get("name", "CustomMiddleware")
        return response

# 使用中间件
server = Server()
server.middleware_manager.add_middleware(
    CustomMiddleware(
        name="MyMiddleware",
        custom_attr="custom_value"
    )
)

@Route.register("/custom", method="GET")  # added
def custom(request):
    return {"custom_attr": request.custom_attr}

server.run()  # added
