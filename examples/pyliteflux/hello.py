# The seed README's "基本使用" (basic use) example; only the import line changed.
from tokenginx import Server, Route

server = Server()

@Route.register("/hello", method="GET")
def hello(request):
    return {"message": "Hello, World!"}

server.run()
