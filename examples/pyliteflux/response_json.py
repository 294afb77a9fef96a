# The seed README's "响应格式 1. 普通JSON响应" (plain JSON). The seed shows only the
# route: the lines marked "added" give it a server.
from tokenginx import Server, Route  # added

server = Server()  # added

@Route.register("/hello", method="GET")
def hello(request):
    return {"message": "Hello, World!"}  # 自动转换为JSON响应

server.run()  # added
