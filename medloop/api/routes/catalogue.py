"""The catalogue (no patient data): the version in force, package search by name, varenr, EAN
or ATC, and one package with its substitution group (``byttegruppe``) and the packages it may be
swapped with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from fest.queries import version_in_force
from interactions.catalogue import Package
from medloop.api.deps import CallerDep
from medloop.api.paging import PAGED, PageRequest, pages
from medloop.api.policy import Action
from medloop.api.problems import NotFound, responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.loop.catalogue import Catalogue, catalogue_in_force
from medloop.loop.errors import NoCatalogueInForce

router = APIRouter(prefix="/catalogue", tags=["catalogue"], route_class=BlockingRoute)
MAX_RESULTS = 100


class CatalogueVersion(BaseModel):
    version: int
    hentet_dato: str
    imported_at: str
    mode: str


class PackageView(BaseModel):
    id: str
    varenr: str
    eans: list[str]
    name: str
    atc: str | None
    prescription_group: str | None
    substitution_group_id: str | None


class SubstitutionGroupView(BaseModel):
    id: str
    code: str
    description: str | None
    restricted: bool
    restriction_text: str | None
    packages: list[PackageView]


class PackageDetail(PackageView):
    catalogue_version: int
    substitution_group: SubstitutionGroupView | None


def _package(package: Package) -> dict:
    return {
        "id": package.id,
        "varenr": package.varenr,
        "eans": list(package.eans),
        "name": package.name,
        "atc": package.atc,
        "prescription_group": package.prescription_group,
        "substitution_group_id": package.substitution_group_id,
    }


def _catalogue(caller) -> Catalogue:
    caller.authorize(Action.CATALOGUE_READ)
    return caller.state.read_behind(catalogue_in_force)


@router.get(
    "",
    response_model=CatalogueVersion,
    responses=responses(401, 403, 503),
    operation_id="readCatalogueVersion",
    summary="The catalogue version in force",
)
def catalogue_version(caller: CallerDep) -> JSONResponse:
    caller.authorize(Action.CATALOGUE_READ)
    found = caller.state.read_behind(version_in_force)
    if found is None:
        raise NoCatalogueInForce("no FEST catalogue has been imported")
    return JSONResponse(
        {
            "version": found["id"],
            "hentet_dato": str(found["hentet_dato"]),
            "imported_at": str(found["imported_at"]),
            "mode": str(found["mode"]),
        }
    )


@router.get(
    "/packages",
    response_model=list[PackageView],
    responses={**responses(401, 403, 422, 503), **PAGED},
    operation_id="searchPackages",
    summary="Search packages by name (substring), varenr, EAN/GTIN or ATC (prefix), by name",
)
def search_packages(
    caller: CallerDep,
    page: Annotated[PageRequest, pages(20, MAX_RESULTS)],
    name: Annotated[str | None, Query(min_length=2, max_length=100)] = None,
    varenr: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    ean: Annotated[str | None, Query(pattern=r"^\d{8,14}$")] = None,
    atc: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9]{1,7}$")] = None,
) -> JSONResponse:
    found = _catalogue(caller).search(name=name, varenr=varenr, ean=ean, atc=atc)
    shown, headers = page.page(found, lambda p: (p.name, p.varenr, p.id))
    return JSONResponse([_package(p) for p in shown], headers=headers)


@router.get(
    "/packages/{varenr}",
    response_model=PackageDetail,
    responses=responses(401, 403, 404, 422, 503),
    operation_id="readPackage",
    summary="One package with its substitution group",
)
def package_detail(
    caller: CallerDep, varenr: Annotated[str, Path(pattern=r"^\d{6}$")]
) -> JSONResponse:
    catalogue = _catalogue(caller)
    found = catalogue.packages_by_varenr.get(varenr, ())
    if not found:
        raise NotFound(f"no package with varenr {varenr} in catalogue version {catalogue.version}")
    package = found[0]
    group = None
    if package.substitution_group_id is not None:
        record = next(
            (g for g in catalogue.substitution_groups if g.id == package.substitution_group_id),
            None,
        )
        if record is not None:
            members = sorted(
                (
                    p
                    for ps in catalogue.packages_by_varenr.values()
                    for p in ps
                    if p.substitution_group_id == record.id
                ),
                key=lambda p: p.varenr,
            )
            group = {
                "id": record.id,
                "code": record.code,
                "description": record.description,
                "restricted": record.restricted,
                "restriction_text": record.restriction_text,
                "packages": [_package(p) for p in members],
            }
    return JSONResponse(
        {**_package(package), "catalogue_version": catalogue.version, "substitution_group": group}
    )
