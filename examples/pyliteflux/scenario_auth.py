# The seed README's "实际应用场景 1. 用户认证和授权" (authentication and authorisation).
# The seed shows only the middleware and the route: the lines marked "added" give it
# imports, the authenticate/get_permissions helpers it calls, and a server to run on.
from tokenginx import Server, Route, Middleware, g  # added

TOKENS = {"admin-token": "alice", "user-token": "bob"}  # added: a toy token table
PERMISSIONS = {"alice": ["admin", "read"], "bob": ["read"]}  # added

server = Server()  # added


class AuthMiddleware(Middleware):
    def process_request(self, request):
        token = request.headers.get("Authorization")
        if token:
            g.user = self.authenticate(token)
            g.permissions = self.get_permissions(g.user)
        return None

    def authenticate(self, token):  # added
        return TOKENS.get(token.removeprefix("Bearer ").strip())

    def get_permissions(self, user):  # added
        return PERMISSIONS.get(user, [])


server.middleware_manager.add_middleware(AuthMiddleware())  # added

@Route.register("/admin", method="GET")
def admin_panel(request):
    if not hasattr(g, "permissions") or "admin" not in g.permissions:
        return {"error": "Access denied"}, 403
    return {"message": "Welcome, admin!"}

server.run()  # added
