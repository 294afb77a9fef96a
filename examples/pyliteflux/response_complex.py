# The seed README's "响应格式 4. 组合使用示例" (one route, three response kinds). The lines
# marked "added" give it the imports it uses and a server.
import json  # added

from tokenginx import Server, Route, StreamResponse, HTTPJSONResponse  # added

server = Server()  # added

@Route.register("/api/complex", method="GET")
def complex_response(request):
    response_type = request.query_params.get("type", "json")
    
    if response_type == "stream":
        def stream():
            for i in range(5):
                yield json.dumps({"count": i}) + "\n"
        return StreamResponse(stream(), content_type="application/x-ndjson")
    
    elif response_type == "error":
        return HTTPJSONResponse(
            {"error": "Bad Request"},
            status=400,
            headers={"X-Error-Details": "Invalid type"}
        )
    
    else:
        return {"message": "Regular JSON response"}  # 自动转换为JSON

server.run()  # added
