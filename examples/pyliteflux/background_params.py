# The seed README's "后台任务参数" (background task arguments). The lines marked "added"
# give it the imports it uses and a server.
import time  # added

from tokenginx import Server, Route, Logger  # added

server = Server()  # added

@Route.register("/task", method="GET")
def async_task(request):
    def background_job(user_id, task_type="default"):
        time.sleep(5)
        Logger.info(f"Processing {task_type} task for user {user_id}")
    
    # 添加带参数的后台任务
    user_id = request.query_params.get("user_id", "0")
    request.bg.add(
        background_job,
        user_id,  # 位置参数
        task_type="important"  # 关键字参数
    )
    
    return {"message": "Task scheduled"}

server.run()  # added
