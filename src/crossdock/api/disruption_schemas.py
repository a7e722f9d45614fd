"""Request and response models of disruptions: nodes closed or penalised, lanes slowed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from crossdock.api.schemas import Id, Number, Strict
from crossdock.routing.disruptions import area_from_geojson

Severity = Literal["extreme", "severe", "moderate", "minor", "unknown"]
Effect = Literal["exclude", "penalty", "delay"]


class AreaIn(Strict):
    """A GeoJSON Polygon or MultiPolygon geometry: [lon, lat] positions, closed rings, holes after
    each polygon's outer ring."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: Annotated[list[Any], Field(min_length=1)] = Field(
        description="Polygon: [ring, ...], the outer ring first; MultiPolygon: [[ring, ...], ...]; a ring is"
        " [[lon, lat], ...] of at least 4 positions, its last the same as its first"
    )

    @model_validator(mode="after")
    def readable(self) -> AreaIn:
        area_from_geojson(self.model_dump())  # its ValueError says which ring or position is wrong
        return self


class DisruptionIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Port strike",
                    "severity": "severe",
                    "effect": "exclude",
                    "node_ids": ["wh-east"],
                    "starts_at": "2026-11-26T00:00:00Z",
                    "ends_at": "2026-11-29T00:00:00Z",
                },
                {
                    "title": "Ice storm",
                    "severity": "moderate",
                    "effect": "delay",
                    "extra_days": 1,
                    "area": {
                        "type": "Polygon",
                        "coordinates": [[[-88.3, 41.5], [-87.5, 41.5], [-87.5, 42.2], [-88.3, 42.2], [-88.3, 41.5]]],
                    },
                },
            ]
        }
    )

    title: Annotated[str, Field(min_length=1, max_length=200)]
    severity: Severity = "unknown"
    effect: Effect = Field(
        "exclude",
        description="exclude: the nodes it covers may not ship; penalty: they cost `penalty` more per parcel;"
        " delay: they ship `extra_days` later",
    )
    penalty: Annotated[Number, Field(ge=0, le=1_000_000)] = 0
    extra_days: Annotated[StrictInt, Field(ge=0, le=60)] = Field(
        0, description="Also added to every lane into a destination inside the area, whatever the effect"
    )
    node_ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    area: AreaIn | None = None
    starts_at: AwareDatetime | None = Field(None, description="Unset: in force at once")
    ends_at: AwareDatetime | None = Field(None, description="Unset: until deleted or replaced")
    note: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def consistent(self) -> DisruptionIn:
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class DisruptionOut(BaseModel):
    id: str
    source: str = Field(description='"manual", or the feed it came from ("nws")')
    title: str
    severity: Severity
    effect: Effect
    penalty: float
    extra_days: int
    node_ids: list[str]
    area: dict[str, Any] | None = Field(description="A GeoJSON Polygon or MultiPolygon")
    starts_at: str | None
    ends_at: str | None
    note: str
    active: bool = Field(description="In force now")
    reason: str = Field(description="What routing explanations say of a node it closes")


class DisruptionListOut(BaseModel):
    disruptions: list[DisruptionOut]


class DisruptionDeletedOut(BaseModel):
    id: str
    deleted: bool
