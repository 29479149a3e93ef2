"""The ucp Functions app: composes the blueprints of functions/ and nothing else."""
import azure.functions as func

from functions.health import bp as health_bp
from functions.profiles import bp as profiles_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health_bp, profiles_bp,):
    app.register_functions(blueprint)
