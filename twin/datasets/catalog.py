"""The public reference datasets the twin knows by name: where upstream keeps each file, pinned
by commit, and the SHA-256 it must have.

The files are never shipped with the project (neither upstream repository states a license):
``twin datasets fetch NAME`` downloads them into the datasets folder (``twin.datasets``).
"""

from __future__ import annotations

from dataclasses import dataclass

# Every URL starts with this host prefix; TWIN_DATASETS_URL replaces it (a mirror, or the local
# server the tests start).
UPSTREAM = "https://raw.githubusercontent.com/"

_HVLM_BASE = "prosysscience/PySCFabSim-release/77103ed1b1be75e99aaac4043c34183e6ba04f74/datasets/SMT2020_HVLM/"
_SMAT_BASE = (
    "kwoo-lee/SMAT2022/a6df7fef99745fa49cf347306abaeb4b19002169/General%20Data/dataset%204/"
)


@dataclass(frozen=True)
class DataFile:
    local: str  # path under the datasets folder
    remote: str  # path under UPSTREAM (URL-quoted)
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    folder: str  # what `twin datasets path NAME` prints, under the datasets folder
    files: tuple[DataFile, ...]


def _hvlm(name: str, sha256: str) -> DataFile:
    return DataFile(f"smt2020/HVLM/{name}", _HVLM_BASE + name, sha256)


DATASETS: dict[str, Dataset] = {
    "smt2020-hvlm": Dataset(
        "smt2020-hvlm",
        "SMT2020 High-Volume/Low-Mix wafer fab (Kopp et al. 2020), PySCFabSim's export",
        "smt2020/HVLM",
        (
            _hvlm("WIP.txt", "68d6164a3d9bd00e32a7d5a5516e76834649ea58aa7f3e622201252de9789698"),
            _hvlm("attach.txt", "82b240c4aae83e4f08a7e4dd91a943a64864de80f77774d6773a611b4c8dedf6"),
            _hvlm(
                "downcal.txt", "c548e7d2c46898717b0e57986c6de745f104b4616cb31e825bf141be4d4baca0"
            ),
            _hvlm("fromto.txt", "56229f6f17e347e7092aec03aeec98d95628676d765555b1a1d6d0af1c95f8d1"),
            _hvlm("order.txt", "2d1f7811af2a09970853b6f053aabd43268b713f91e39ae8d43e0103e1ec2446"),
            _hvlm("part.txt", "b125e7826f7e03eaf18e5d0f2c0876cf7daf2c7b7826a0f5b22c60338b307b86"),
            _hvlm("pmcal.txt", "dc36cc55f78c4471fd27d56dba2fa706ad3ff000dbf00c6ee7db5f1cea5c2bad"),
            _hvlm(
                "route_3.txt", "21f8e94fd36b66c869efa482056257c1c8c908b1550731e7fde9f9f2e96b74ef"
            ),
            _hvlm(
                "route_4.txt", "f9daf7e844299bfb5722172b4fde6b8354a761d6fcc4fd40a27d53cc43278ac9"
            ),
            _hvlm("setup.txt", "bacd8cfdf6ab6599821bb430033dda12802d7424f93501c4dea8d7d1a739cdb7"),
            _hvlm(
                "setupgrp.txt", "e557590f4bc776607f1100b9cdd27ce373ca0ddec831b56f2ca58465ed0792f1"
            ),
            _hvlm(
                "tool.txt.1l", "89bc308b59dfbcf2a26d2e4bb9f7e5aa45b187a9f95601b6ffd4c17e27a1b024"
            ),
        ),
    ),
    "smat2022": Dataset(
        "smat2022",
        "SMAT2022 fab layout with AMHS, LVHM_E workbook (Kim et al. 2022)",
        "smat2022/SMAT_2022_Model_Data_-_LVHM_E.xlsx",
        (
            DataFile(
                "smat2022/SMAT_2022_Model_Data_-_LVHM_E.xlsx",
                _SMAT_BASE + "SMAT_2022_Model_Data_-_LVHM_E.xlsx",
                "8e74e6db2272ad7dbeeb26de2adb1cd69e27a7848fe7baa0524803fd317156c0",
            ),
        ),
    ),
}
