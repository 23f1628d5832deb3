"""Shapes: operator-defined sizes per region and GPU model, and "which shape fits my
workload most cheaply".

Prices on shapes are list prices in the region's currency. To compare regions with
different currencies, they are converted with indicative reference rates (below) until
billing's price books answer that question (issue 6 wires its port in).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.ids import new_id
from control_plane.inventory.capacity import gpu_memory_gib, region_currencies
from control_plane.tenancies.models import Shape
from control_plane.tenancies.schemas import ShapeCreate, ShapeRead, ShapeSuggestion, WorkloadProfile

# Indicative value of one unit of each currency in CAD, for ranking only (never billed).
REFERENCE_RATES_CAD = {
    "CAD": Decimal("1"),
    "USD": Decimal("1.38"),
    "EUR": Decimal("1.50"),
    "SEK": Decimal("0.13"),
}


def comparable_price(price: Decimal, currency: str) -> Decimal:
    return price * REFERENCE_RATES_CAD.get(currency, Decimal("1"))


async def list_shapes(db: AsyncSession, regions: Sequence[str] | None = None) -> list[ShapeRead]:
    query = select(Shape)
    if regions is not None:
        query = query.where(Shape.region_code.in_(list(regions)))
    rows = (await db.execute(query.order_by(Shape.region_code, Shape.hourly_price))).scalars()
    memory = await gpu_memory_gib(db)
    currencies = await region_currencies(db)
    return [_read(s, memory, currencies) for s in rows]


async def get_shape(db: AsyncSession, region: str, name: str) -> Shape:
    shape = (
        await db.execute(select(Shape).where(Shape.region_code == region, Shape.name == name))
    ).scalar_one_or_none()
    if shape is None:
        raise InvalidInput(
            detail=f"Region {region} has no shape {name!r}.",
            errors=[FieldError("body.shape", "unknown in this region")],
        )
    return shape


async def create_shape(db: AsyncSession, clock: Clock, region: str, data: ShapeCreate) -> ShapeRead:
    memory = await gpu_memory_gib(db)
    currencies = await region_currencies(db)
    if region not in currencies:
        raise NotFound(detail="No such region.")
    if data.gpu_model not in memory:
        raise InvalidInput(
            detail=f"No GPU model {data.gpu_model!r} in the catalog.",
            errors=[FieldError("body.gpu_model", "unknown GPU model")],
        )
    if not Decimal(0) <= data.hourly_price <= Decimal(1_000_000):
        raise InvalidInput(
            detail="hourly_price must be between 0 and 1000000.",
            errors=[FieldError("body.hourly_price", "out of range")],
        )
    if data.gpu_milli < 1000 and (data.gpus_per_node != 1 or data.node_count != 1):
        raise InvalidInput(
            detail="A fractional shape is one share of one GPU.",
            errors=[FieldError("body.gpu_milli", "below 1000 needs one GPU on one node")],
        )
    shape = Shape(
        id=new_id("shp"), region_code=region, name=data.name, description=data.description,
        gpu_model_code=data.gpu_model, gpus_per_node=data.gpus_per_node,
        node_count=data.node_count, gpu_milli=data.gpu_milli, interconnect=data.interconnect,
        hourly_price=data.hourly_price, created_at=clock.now(),
    )  # fmt: skip
    db.add(shape)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict(detail=f"Region {region} already has a shape {data.name!r}.") from exc
    return _read(shape, memory, currencies)


async def delete_shape(db: AsyncSession, region: str, name: str) -> None:
    shape = await get_shape(db, region, name)
    await db.delete(shape)


def fits(shape: ShapeRead, profile: WorkloadProfile) -> bool:
    gpus = shape.gpus_per_node * shape.node_count
    memory = shape.gpu_memory_gib * gpus * shape.gpu_milli / 1000
    if gpus < profile.gpu_count or memory < profile.gpu_memory_gib:
        return False
    if profile.interconnect == "nvlink" and profile.gpu_count > 1:
        return shape.interconnect == "nvlink" and shape.node_count == 1
    return True


async def suggest(
    db: AsyncSession, profile: WorkloadProfile, allowed_regions: Sequence[str]
) -> ShapeSuggestion:
    """The cheapest shape, in a region the policy allows, that fits the profile."""
    candidates = [s for s in await list_shapes(db, allowed_regions) if fits(s, profile)]
    candidates.sort(key=lambda s: (comparable_price(s.hourly_price, s.currency), s.region, s.name))
    if not candidates:
        return ShapeSuggestion(
            shape=None,
            reason=(
                f"No shape in {', '.join(allowed_regions) or 'an allowed region'} offers "
                f"{profile.gpu_count} GPU(s) with {profile.gpu_memory_gib} GiB"
                + (" over NVLink" if profile.interconnect == "nvlink" else "")
                + "; ask for fewer GPUs or less memory per GPU, or contact the operator."
            ),
            alternatives=[],
        )
    best = candidates[0]
    return ShapeSuggestion(
        shape=best,
        reason=(
            f"{best.name} in {best.region}: {best.gpus_per_node * best.node_count} x "
            f"{best.gpu_model} ({best.gpu_memory_gib} GiB each) at {best.hourly_price} "
            f"{best.currency}/h is the cheapest shape that fits."
        ),
        alternatives=candidates[1:4],
    )


def _read(shape: Shape, memory: dict[str, int], currencies: dict[str, str]) -> ShapeRead:
    return ShapeRead(
        id=shape.id, region=shape.region_code, name=shape.name, description=shape.description,
        gpu_model=shape.gpu_model_code, gpu_memory_gib=memory.get(shape.gpu_model_code, 0),
        gpus_per_node=shape.gpus_per_node, node_count=shape.node_count,
        gpu_milli=shape.gpu_milli, interconnect=shape.interconnect,
        hourly_price=shape.hourly_price, currency=currencies.get(shape.region_code, ""),
    )  # fmt: skip
