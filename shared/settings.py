"""Application settings, read from the environment (Functions app settings, local.settings.json or .env).

Defaults point at the local stack started by `make run`; production sets the same names as app settings.
"""
from __future__ import annotations

from functools import lru_cache

from urllib.parse import urlparse

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The well-known Azurite development account (public, documented by Microsoft).
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The well-known Cosmos DB emulator key (public, documented by Microsoft).
COSMOS_EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU9DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def azurite_connection_string(host: str = "127.0.0.1", blob_port: int = 10000, queue_port: int = 10001) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/devstoreaccount1;"
        f"QueueEndpoint=http://{host}:{queue_port}/devstoreaccount1;"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UCP_", extra="ignore", populate_by_name=True)

    # --- Storage (Blob + Queue). A connection string, or an account name for managed identity.
    storage_connection: str = Field(
        default_factory=azurite_connection_string,
        validation_alias=AliasChoices("AzureWebJobsStorage", "UCP_STORAGE_CONNECTION"),
    )
    storage_account_name: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__accountName", "UCP_STORAGE_ACCOUNT_NAME")
    )

    # --- Cosmos DB. No key means DefaultAzureCredential (managed identity in Azure).
    cosmos_endpoint: str = Field(default="https://127.0.0.1:8081/", validation_alias=AliasChoices("COSMOS_ENDPOINT", "UCP_COSMOS_ENDPOINT"))
    cosmos_key: str | None = Field(default=None, validation_alias=AliasChoices("COSMOS_KEY", "UCP_COSMOS_KEY"))
    cosmos_database: str = Field(default="ucp", validation_alias=AliasChoices("COSMOS_DATABASE", "UCP_COSMOS_DATABASE"))
    # Prefix for container names, so several test runs or tenants can share one database.
    container_prefix: str = ""

    # --- Blob containers and queues.
    landing_container: str = "landing"
    quarantine_container: str = "quarantine"
    failed_container: str = "failed"
    models_container: str = "models"
    exports_container: str = "exports"
    claims_container: str = "claims"
    config_container: str = "config"
    resolve_queue: str = "resolve"
    activity_queue: str = "activity"

    # --- Identity resolution thresholds (match probability): finite, 0 < review <= match <= 1. A score at or above
    # match links, at or above review goes to review; equal thresholds mean no review band.
    match_threshold: float = Field(0.97, gt=0, le=1, allow_inf_nan=False)
    review_threshold: float = Field(0.80, gt=0, le=1, allow_inf_nan=False)
    # Merge protection, survivorship and candidate limits (JSON); empty: the shipped config/identity.json.
    identity_config: str = ""
    # The match model (JSON, as `ucp match-model` writes one fitted to your data); empty: the shipped model.
    match_model: str = ""
    # Records the store holds, or will (UCP_MATCH_POPULATION): the model's priors are scaled to it (a pair's prior
    # odds of being one person fall as the store grows); empty: the size the model was fitted for (shipped: 100,000).
    match_population: int | None = Field(None, ge=2)
    # Records of one queue message resolved side by side (those sharing a key stay in order): threads per process.
    resolve_concurrency: int = 8
    # Records per resolve message (UCP_RESOLVE_BATCH_RECORDS): a file's messages are resolved by different processes
    # or instances at once, so smaller messages spread a small file. Records of one source record stay together.
    resolve_batch_records: int = 25
    # A split whose worker died, and whose caller did not ask again, is finished by a timer once its profile has not
    # been written for this long (seconds): a split still running is left to its worker.
    split_idle_seconds: int = Field(300, ge=0)
    # The same for a merge whose worker died and whose profiles no later resolve touched (their records stay in both
    # until then): a merge saga takes milliseconds, so one idle this long is cut off.
    merge_idle_seconds: int = Field(300, ge=0)
    # The hourly repair_recent_index timer mends the index documents the races of this many seconds back left behind
    # (the documents written since, and what they name: `ucp repair-index --since-seconds`); 0 turns it off. Twice
    # the hour, so a run that failed is covered by the next.
    repair_window_seconds: int = Field(7200, ge=0)

    # --- Churn.
    churn_window_days: int = 90
    churn_schedule: str = "0 0 2 * * *"  # six-field NCRONTAB, UTC: nightly at 02:00
    churn_risk_medium: float = 0.4
    churn_risk_high: float = 0.7
    churn_auc_tolerance: float = 0.005

    # --- Enrichment (derived attributes), six-field NCRONTAB, UTC.
    enrichment_schedule: str = "0 30 3 * * *"
    # Insights refresh (measures, needs, journey stages, segment membership), six-field NCRONTAB, UTC.
    insights_schedule: str = "0 0 4 * * *"

    # --- Ingestion limits.
    max_decompressed_bytes: int = 2 * 1024**3
    max_field_bytes: int = 64 * 1024

    @field_validator("match_population", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        return None if isinstance(value, str) and not value.strip() else value  # an app setting left blank

    @model_validator(mode="after")
    def _review_band(self) -> "Settings":
        if self.review_threshold > self.match_threshold:
            raise ValueError(f"UCP_REVIEW_THRESHOLD {self.review_threshold} is above UCP_MATCH_THRESHOLD "
                             f"{self.match_threshold} (swapped?): every score from {self.match_threshold} up would "
                             "link and none go to review; set review at or below match (equal: no review band)")
        return self

    @model_validator(mode="after")
    def _emulator_key_for_local_cosmos(self) -> "Settings":
        # Only a local emulator gets the well-known key by default; anywhere else no key means Entra ID.
        if not self.cosmos_key and urlparse(self.cosmos_endpoint).hostname in ("127.0.0.1", "localhost"):
            self.cosmos_key = COSMOS_EMULATOR_KEY
        return self


    def to_env(self) -> dict[str, str]:
        """These settings as environment variables (app settings) that reproduce them in another process:
        aliased fields under their first alias, the rest as UCP_<NAME>. Unset values are left out."""
        env: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            alias = field.validation_alias
            env_name = alias.choices[0] if isinstance(alias, AliasChoices) else f"UCP_{name.upper()}"
            env[env_name] = str(value)
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read once (call get_settings.cache_clear() after changing the environment)."""
    return Settings()
