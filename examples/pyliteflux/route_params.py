# The seed README's "路由参数" (route declarations). The seed stacks the decorators with
# no functions under them; here each decorates its own handler (lines marked "added").
from tokenginx import Server, Route

server = Server()  # added

# HTTP路由
@Route.register("/hello", method="GET")  # 基本GET请求
def hello(request):  # added
    return {"message": "Hello, World!"}

@Route.register("/user", method="POST")  # POST请求
def create_user(request):  # added
    return {"created": request.json_data or request.form_data}, 201

@Route.register("/user/{id}", method="GET")  # 带路径参数的路由
def get_user(request):  # added
    return {"id": request.path_params["id"]}

@Route.register("/files/*", method="GET")  # 通配符路由
def get_file(request):  # added
    return {"path": request.path_params["wildcard"]}

# TCP路由
@Route.register("command", protocol="tcp")  # TCP命令路由
def command(request):  # added
    return {"command": "command", "data": request.data}

server.run()  # added
