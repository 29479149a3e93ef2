"""The ucp Functions app: composes the blueprints of functions/ and nothing else."""
import azure.functions as func

from functions.health import bp as health_bp
from functions.profiles import bp as profiles_bp
from functions.events import bp as events_bp
from functions.enrichment import bp as enrichment_bp
from functions.ingest import bp as ingest_bp
from functions.resolve import bp as resolve_bp
from functions.churn import bp as churn_bp
from functions.insights import bp as insights_bp
from functions.dashboard import bp as dashboard_bp
from functions.reviews import bp as reviews_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health_bp, profiles_bp, events_bp, enrichment_bp, ingest_bp, churn_bp, resolve_bp, insights_bp, dashboard_bp, reviews_bp):
    app.register_functions(blueprint)
