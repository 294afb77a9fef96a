# The seed README's "配置选项" (configuration) example; only the import line changed.
# It configures a server without running it (as in the seed); the settings map onto
# server.http_addr, server.tcp_addr, server.tcp_keepalive and logging.level.
from tokenginx import Server

server = Server()
server.config.update(
    http_host="127.0.0.1",
    http_port=8000,
    tcp_host="127.0.0.1",
    tcp_port=8001,
    tcp_keep_alive=True,  # 启用TCP长连接
    info=True  # 启用日志
)
