"""Parsing node enrolment files: rows, GPUs, and errors that name the row and field."""

from __future__ import annotations

import zlib

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from control_plane.inventory.node_import import ImportRejected, NodeRow, parse

HEADER = (
    "hostname,region,site,rack,bmc_endpoint,gpu_model,gpu_count,"
    "firmware_version,driver_version,gpu_uuids,nvlink_domain"
)


def row(host: str = "gpu-1", count: int = 2, uuids: str | None = None, **fields: str) -> str:
    values = {
        "hostname": host,
        "region": "ca-qc-1",
        "site": "qc-mtl-1",
        "rack": "r01",
        "bmc_endpoint": "https://bmc.internal:8443/redfish",
        "gpu_model": "h100",
        "gpu_count": str(count),
        "firmware_version": "96.00.1",
        "driver_version": "550.127",
        "gpu_uuids": uuids if uuids is not None else ";".join(gpu_uuids(host, count)),
        "nvlink_domain": "",
        **fields,
    }
    return ",".join(values[c] for c in HEADER.split(","))


def gpu_uuids(host: str, count: int) -> list[str]:
    return [f"GPU-{zlib.crc32(host.encode()):08x}-{i:04x}" for i in range(count)]


def csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def refused(fmt: str, content: str) -> list[tuple[str, str]]:
    with pytest.raises(ImportRejected) as caught:
        parse(fmt, content)
    return [(e.field, e.reason) for e in caught.value.errors]


def fields(fmt: str, content: str) -> list[str]:
    return [field for field, _ in refused(fmt, content)]


def yaml_node(**overrides: object) -> dict[str, object]:
    node: dict[str, object] = {
        "hostname": "gpu-y",
        "region": "se-north-1",
        "site": "se-lla-1",
        "rack": "r1",
        "bmc_endpoint": "http://10.0.0.1",
        "gpu_model": "a100",
        "gpu_count": 2,
        "firmware_version": "1.0",
        "driver_version": "550",
        "gpu_uuids": "GPU-aaaaaaaa-0001;GPU-aaaaaaaa-0002",
    }
    node.update(overrides)
    return node


class TestCsv:
    def test_rows_are_numbered_by_file_line_and_gpus_by_position(self) -> None:
        rows = parse("csv", csv(row("gpu-1", nvlink_domain="pod-1"), row("gpu-2", count=1)))

        assert [(r.line, r.hostname) for r in rows] == [(2, "gpu-1"), (3, "gpu-2")]
        assert [(g.index, g.uuid, g.nvlink_domain) for g in rows[0].gpus] == [
            (0, gpu_uuids("gpu-1", 2)[0], "pod-1"),
            (1, gpu_uuids("gpu-1", 2)[1], "pod-1"),
        ]
        assert rows[1].gpus[0].nvlink_domain is None

    def test_surrounding_spaces_are_ignored(self) -> None:
        content = csv(row(" gpu-1 ", uuids=" GPU-0000aaaa-0001 ; GPU-0000aaaa-0002 "))

        parsed = parse("csv", content)[0]

        assert parsed.hostname == "gpu-1"
        assert [g.uuid for g in parsed.gpus] == ["GPU-0000aaaa-0001", "GPU-0000aaaa-0002"]

    def test_a_missing_or_unknown_column_names_the_header(self) -> None:
        content = "hostname,region,colour\ngpu-1,ca-qc-1,blue\n"

        problems = refused("csv", content)

        assert {field for field, _ in problems} == {"header"}
        assert ("header", "unknown column colour") in problems
        assert ("header", "missing column site") in problems

    def test_extra_values_are_refused(self) -> None:
        assert fields("csv", csv(row() + ",surplus")) == ["row 2"]

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            ({"hostname": "Has_Underscore"}, "hostname"),
            ({"hostname": ""}, "hostname"),
            ({"region": "ca qc"}, "region"),
            ({"bmc_endpoint": "ftp://bmc"}, "bmc_endpoint"),
            ({"gpu_count": "eight"}, "gpu_count"),
            ({"gpu_count": "0"}, "gpu_count"),
            ({"gpu_count": "65"}, "gpu_count"),
            ({"gpu_uuids": "not-a-uuid;GPU-aaaaaaaa-0002"}, "gpu_uuids"),
            ({"nvlink_domain": "has space"}, "nvlink_domain"),
            ({"driver_version": ""}, "driver_version"),
        ],
    )
    def test_a_bad_value_names_its_row_and_field(self, bad: dict[str, str], field: str) -> None:
        content = csv(row("gpu-ok"), row("gpu-bad", **bad))

        assert fields("csv", content) == [f"row 3: {field}"]

    @pytest.mark.parametrize("given_uuids", [1, 3])
    def test_the_uuid_count_must_match_gpu_count(self, given_uuids: int) -> None:
        content = csv(row("gpu-1", count=2, uuids=";".join(gpu_uuids("gpu-1", given_uuids))))

        assert fields("csv", content) == ["row 2: gpu_uuids"]

    def test_repeated_hostnames_and_uuids_name_the_later_row(self) -> None:
        content = csv(row("gpu-1"), row("gpu-2"), row("gpu-1", uuids=row_uuids("gpu-2")))

        problems = refused("csv", content)

        assert ("row 4: hostname", "repeats row 2") in problems
        assert [f for f, _ in problems].count("row 4: gpu uuid") == 2  # one per repeated GPU

    def test_every_bad_row_is_reported_not_just_the_first(self) -> None:
        content = csv(row("gpu-1", gpu_count="x"), row("gpu-2"), row("BAD!"))

        assert fields("csv", content) == ["row 2: gpu_count", "row 4: hostname"]

    def test_an_empty_file_is_refused(self) -> None:
        assert fields("csv", HEADER + "\n") == ["content"]


def row_uuids(host: str) -> str:
    return ";".join(gpu_uuids(host, 2))


class TestYaml:
    def test_a_list_or_a_nodes_mapping_is_accepted(self) -> None:
        as_list = parse("yaml", yaml.safe_dump([yaml_node()]))
        as_mapping = parse("yaml", yaml.safe_dump({"nodes": [yaml_node()]}))

        assert as_list == as_mapping
        assert as_list[0].line == 1

    def test_explicit_gpus_keep_their_index_and_domain(self) -> None:
        node = yaml_node(
            gpu_uuids=None,
            gpus=[
                {"uuid": "GPU-bbbbbbbb-0002", "index": 1, "nvlink_domain": "nvl-9"},
                {"uuid": "GPU-bbbbbbbb-0001", "index": 0},
            ],
        )

        parsed = parse("yaml", yaml.safe_dump([node]))[0]

        by_index = sorted(parsed.gpus, key=lambda g: g.index)
        assert [(g.index, g.uuid, g.nvlink_domain) for g in by_index] == [
            (0, "GPU-bbbbbbbb-0001", None),
            (1, "GPU-bbbbbbbb-0002", "nvl-9"),
        ]

    @pytest.mark.parametrize(
        ("gpus", "field"),
        [
            ([{"uuid": "GPU-cccccccc-0001"}], "gpus"),
            (
                [
                    {"uuid": "GPU-cccccccc-0001", "index": 0},
                    {"uuid": "GPU-cccccccc-0002", "index": 0},
                ],
                "gpus",
            ),
            (
                [{"uuid": "GPU-cccccccc-0001", "index": 5}, {"uuid": "GPU-cccccccc-0002"}],
                "gpus[0].index",
            ),
            ([{"uuid": "nope"}, {"uuid": "GPU-cccccccc-0002"}], "gpus[0].uuid"),
            (["GPU-cccccccc-0001", "GPU-cccccccc-0002"], "gpus[0]"),
        ],
    )
    def test_bad_gpu_lists_name_the_field(self, gpus: list[object], field: str) -> None:
        node = yaml_node(gpu_uuids=None, gpus=gpus)

        problems = fields("yaml", yaml.safe_dump([yaml_node(hostname="gpu-ok"), node]))

        assert problems == [f"row 2: {field}"]

    def test_an_unknown_key_is_refused_by_name(self) -> None:
        assert fields("yaml", yaml.safe_dump([yaml_node(colour="blue")])) == ["row 1: colour"]

    @pytest.mark.parametrize(
        ("content", "field"),
        [
            ("hostname: [unclosed", "line 1"),
            ("just a string", "content"),
            ("- 1\n- 2\n", "row 1"),
            ("nodes: []\n", "content"),
        ],
    )
    def test_documents_of_the_wrong_shape_are_refused(self, content: str, field: str) -> None:
        assert fields("yaml", content)[0] == field


HOSTNAME = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z")


class TestProperties:
    @given(st.lists(HOSTNAME, min_size=1, max_size=8, unique=True), st.integers(1, 8))
    def test_any_valid_file_parses_to_one_row_per_line(self, hosts: list[str], count: int) -> None:
        content = csv(
            *(
                row(h, count=count, uuids=";".join(unique_uuids(n, count)))
                for n, h in enumerate(hosts)
            )
        )

        rows = parse("csv", content)

        assert [r.hostname for r in rows] == hosts
        assert all(isinstance(r, NodeRow) and len(r.gpus) == count for r in rows)
        assert all([g.index for g in r.gpus] == list(range(count)) for r in rows)

    @given(st.text(max_size=200))
    def test_arbitrary_text_either_parses_or_is_refused_with_named_fields(
        self, content: str
    ) -> None:
        for fmt in ("csv", "yaml"):
            try:
                parse(fmt, content)
            except ImportRejected as rejected:
                problems = rejected.errors
            else:
                continue
            assert problems
            assert all(e.field for e in problems)


def unique_uuids(node: int, count: int) -> list[str]:
    return [f"GPU-{node:08x}-{i:04x}" for i in range(count)]
