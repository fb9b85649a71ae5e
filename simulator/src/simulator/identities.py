"""Identities of the simulated city: names, citizen ID numbers, credit codes, addresses.

Everything is vectorised with numpy so that a million persons take seconds. The check
characters follow GB 11643 (citizen ID) and GB 32100 (unified social credit code); the
tests check every generated value against ``stdnum.cn.ric`` / ``stdnum.cn.uscc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.rows import Lazy, is_null, lazy

Strings = npt.NDArray[np.str_]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# ---------------------------------------------------------------- districts and streets


@dataclass(frozen=True)
class District:
    code: str
    name: str
    weight: float  # share of the city's residents
    streets: tuple[str, ...]


DISTRICTS: tuple[District, ...] = (
    District(
        "360202",
        "昌江区",
        0.28,
        ("昌江大道", "瓷都大道", "新厂西路", "景东大道", "丽阳路", "鱼丽路", "西市区大道"),
    ),
    District(
        "360203",
        "珠山区",
        0.32,
        ("珠山中路", "广场北路", "陶阳路", "莲社北路", "新华路", "中山北路", "人民路", "新厂东路"),
    ),
    District("360222", "浮梁县", 0.14, ("浮梁大道", "瑶里路", "朝阳路", "旧城大道", "三贤湖路")),
    District("360281", "乐平市", 0.26, ("翥山大道", "洎阳路", "长寿路", "乐安大道", "天龙路")),
)
CITY_PREFIX = "江西省景德镇市"

# (code, first birth year the code is valid for, fallback code for earlier births, weight).
# stdnum checks the code against the birth year (乐平市 exists since 1992, for instance);
# real numbers of people born earlier carry the codes of that time, here 景德镇市 itself.
BIRTH_REGIONS: tuple[tuple[str, int, str, float], ...] = (
    ("360202", 1983, "360200", 0.26),
    ("360203", 1983, "360200", 0.28),
    ("360222", 1988, "360200", 0.11),
    ("360281", 1992, "360200", 0.17),
    ("360200", 0, "360200", 0.04),
    ("360102", 1983, "360121", 0.02),  # 南昌市东湖区
    ("360121", 0, "360121", 0.01),  # 南昌县
    ("360402", 1983, "360121", 0.015),  # 九江市濂溪区
    ("360502", 1983, "360121", 0.01),  # 新余市渝水区
    ("330106", 1983, "310104", 0.02),  # 杭州市西湖区
    ("440305", 1983, "110105", 0.015),  # 深圳市南山区
    ("420102", 1983, "110105", 0.01),  # 武汉市江岸区
    ("350102", 1983, "310104", 0.01),  # 福州市鼓楼区
    ("340102", 1983, "310104", 0.01),  # 合肥市瑶海区
    ("110105", 0, "110105", 0.005),  # 北京市朝阳区
    ("310104", 0, "310104", 0.005),  # 上海市徐汇区
)

SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤"
)
# Jiangxi's own frequent surnames first-weighted a little higher than the national list.
_SURNAME_WEIGHTS = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.9
MALE_GIVEN = tuple(
    "伟强磊军勇杰涛明超斌鹏辉华建国平俊峰文波宇浩凯健亮翔龙飞刚晨阳志鑫博昊轩睿泽海德荣"
)
FEMALE_GIVEN = tuple(
    "芳娜敏静丽艳娟霞燕玲萍红婷雪琳颖慧洁莉倩欣怡佳悦梦雨婧瑶璐思涵萱琪秀英兰桂玉春"
)
COMMON_GIVEN = tuple("子一晓嘉家小文志永金")
ETHNICITIES = ("汉族", "畲族", "回族", "满族", "苗族", "壮族", "土家族", "蒙古族")
ETHNICITY_WEIGHTS = (0.9955, 0.0015, 0.001, 0.0006, 0.0005, 0.0004, 0.0003, 0.0002)

BANKS = (
    "中国工商银行景德镇分行",
    "中国建设银行景德镇分行",
    "中国农业银行景德镇分行",
    "中国银行景德镇分行",
    "交通银行景德镇分行",
    "景德镇农村商业银行",
    "九江银行景德镇分行",
    "江西银行景德镇分行",
    "中国邮政储蓄银行景德镇市分行",
)
BANK_WEIGHTS = (0.2, 0.2, 0.14, 0.12, 0.06, 0.12, 0.08, 0.05, 0.03)

TRADE_NAMES = tuple(
    [
        "瓷韵",
        "昌南",
        "浮瓷",
        "玉风",
        "青花",
        "陶源",
        "珠山",
        "御窑",
        "雅瓷",
        "景华",
        "新瓷",
        "瑶里",
        "乐安",
        "翥山",
        "洎阳",
        "皓月",
        "恒信",
        "鑫源",
        "华泰",
        "永兴",
        "宏达",
        "瑞丰",
        "金瓷",
        "汇通",
        "天成",
        "康泰",
        "万家",
        "昌盛",
        "蓝韵",
        "白玉",
    ]
)
INDUSTRIES = (
    "陶瓷文化",
    "瓷业",
    "商贸",
    "建筑工程",
    "物业管理",
    "餐饮管理",
    "信息科技",
    "旅游发展",
    "房地产开发",
    "物流",
    "电子商务",
    "陶瓷艺术",
)
SHOP_KINDS = ("陶瓷工作室", "便利店", "小吃店", "五金店", "瓷器店", "理发店", "茶叶店")

# ---------------------------------------------------------------- check characters

_RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
RIC_CHECK = "0123456789X"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, Z, S, V
_USCC_WEIGHTS = np.array(
    [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64
)
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def _codepoints(values: Strings, width: int) -> npt.NDArray[np.int64]:
    """An (n, width) matrix of the characters' code points (0 past a string's end)."""
    fixed = np.asarray(values, dtype=f"<U{width}")
    return fixed.view(np.uint32).reshape(len(fixed), width).astype(np.int64)


def ric_check_digits(bodies: Ints) -> Strings:
    """GB 11643 check characters ('0'..'9', 'X') for 17-digit numeric bodies."""
    total = np.zeros(len(bodies), dtype=np.int64)
    rest = bodies.copy()
    for position in range(16, -1, -1):  # least significant digit has weight index 16
        total += (rest % 10) * _RIC_WEIGHTS[position]
        rest //= 10
    index = (12 - total % 11) % 11
    return np.array(list(RIC_CHECK), dtype="<U1")[index]


def uscc_check_chars(bodies: Strings) -> Strings:
    """GB 32100 check characters for 17-character bodies (digits and USCC letters)."""
    lookup = np.full(128, -10_000, dtype=np.int64)  # a foreign character spoils the sum
    for value, char in enumerate(USCC_ALPHABET):
        lookup[ord(char)] = value
    points = _codepoints(bodies, 17)
    total = (lookup[np.minimum(points, 127)] * _USCC_WEIGHTS).sum(axis=1)
    checks: Strings = np.array(list(USCC_ALPHABET), dtype="<U1")[(31 - total % 31) % 31]
    return checks


def org_check_chars(bodies: Strings) -> Strings:
    """GB 11714 organisation-code check characters for 8-character bodies."""
    points = _codepoints(bodies, 8)
    values = np.where(points >= ord("A"), points - ord("A") + 10, points - ord("0"))
    check = 11 - (values * _ORG_WEIGHTS).sum(axis=1) % 11
    table = np.array(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "0"], dtype="<U1")
    checks: Strings = table[check]
    return checks


def _fixed_text(values: npt.NDArray[Any]) -> Strings:
    """IDs as fixed-width text, NULL as empty (longer values are cut: never valid)."""
    array = np.asarray(values)
    if array.dtype == object:
        array = np.where(is_null(array), "", array)
    text = array.astype("<U19")
    return np.where(np.strings.str_len(text) == 18, text, "").astype("<U18")


def ric_valid_check(ids: npt.NDArray[np.object_] | Strings) -> Bools:
    """True where an 18-character citizen ID carries the right GB 11643 check digit."""
    text = _fixed_text(ids)
    ok = (np.strings.str_len(text) == 18) & np.strings.isdigit(np.strings.slice(text, 0, 17))
    bodies = np.where(ok, np.strings.slice(text, 0, 17), "0").astype(np.int64)
    valid: Bools = ok & (ric_check_digits(bodies) == np.strings.slice(text, 17, 18))
    return valid


def uscc_valid_check(codes: npt.NDArray[np.object_] | Strings) -> Bools:
    """True where an 18-character credit code carries the right GB 32100 check character."""
    text = _fixed_text(codes)
    ok = np.strings.str_len(text) == 18
    valid: Bools = ok & (
        uscc_check_chars(np.strings.slice(text, 0, 17)) == np.strings.slice(text, 17, 18)
    )
    return valid


def party_valid_check(values: npt.NDArray[np.object_] | Strings) -> Bools:
    """Citizen ID or credit code, told apart by the first character ('9': a credit code).

    No GB 2260 region code starts with 9, and every credit code made here does.
    """
    text = _fixed_text(values)
    is_code = np.strings.startswith(text, "9")
    return np.where(is_code, uscc_valid_check(text), ric_valid_check(text))


def spoil_check_chars(values: Strings, rng: np.random.Generator) -> Strings:
    """The same IDs or codes with a wrong check character (a typing error in the last place)."""
    text = np.asarray(values, dtype="<U18")
    if len(text) == 0:
        return text
    is_code = np.strings.startswith(text, "9")
    last = np.strings.slice(text, 17, 18)
    ric_index = np.searchsorted(np.array(list(RIC_CHECK)), last)
    uscc_index = np.searchsorted(np.array(list(USCC_ALPHABET)), last)
    ric_new = np.array(list(RIC_CHECK))[(ric_index + rng.integers(1, 11, len(text))) % 11]
    uscc_new = np.array(list(USCC_ALPHABET))[(uscc_index + rng.integers(1, 31, len(text))) % 31]
    replacement = np.where(is_code, uscc_new, ric_new)
    return np.strings.add(np.strings.slice(text, 0, 17), replacement)


# ---------------------------------------------------------------- people


@dataclass
class People:
    """Persons as parallel arrays (one index per person)."""

    citizen_id_body: Ints  # 17-digit bodies (8 bytes a person; the text is 72)
    name: Strings
    sex: Strings  # '1' male, '2' female (GB/T 2261.1)
    birth_date: npt.NDArray[np.datetime64]
    district: Strings  # current household district code
    address: Lazy

    @property
    def citizen_id(self) -> Strings:
        """The citizen IDs as text, check digit included."""
        return id_text(self.citizen_id_body)


def digits(values: npt.NDArray[np.integer[Any]], width: int = 0) -> Strings:
    """Integers as text, zero-padded to ``width``; narrow dtypes keep big arrays small."""
    top = int(values.max()) if len(values) else 0
    text = values.astype(f"<U{max(len(str(top)), 1)}")
    return np.strings.zfill(text, width) if width else text


def pick(rng: np.random.Generator, options: tuple[str, ...], n: int, p: object = None) -> Strings:
    """``n`` values drawn from ``options`` (with weights ``p`` when given)."""
    weights = None if p is None else np.asarray(p, dtype=float) / np.sum(np.asarray(p, dtype=float))
    return np.array(options, dtype=str)[rng.choice(len(options), size=n, p=weights)]


def person_names(rng: np.random.Generator, male: Bools) -> Strings:
    """Chinese names: a surname and one or two given-name characters."""
    n = len(male)
    surname = pick(rng, SURNAMES, n, _SURNAME_WEIGHTS)
    first = np.where(male, pick(rng, MALE_GIVEN, n), pick(rng, FEMALE_GIVEN, n))
    leading = pick(rng, COMMON_GIVEN, n)
    second = np.where(male, pick(rng, MALE_GIVEN, n), pick(rng, FEMALE_GIVEN, n))
    two_chars = rng.random(n) < 0.62
    given = np.where(
        two_chars,
        np.where(
            rng.random(n) < 0.25, np.strings.add(leading, first), np.strings.add(first, second)
        ),
        first,
    )
    return np.strings.add(surname, given)


def birth_dates(
    rng: np.random.Generator,
    n: int,
    today: np.datetime64,
    *,
    min_age: float = 0,
    max_age: float = 92,
) -> npt.NDArray[np.datetime64]:
    """Birth dates for an ageing city: fewer children and very old people."""
    mode = min(max(42.0, min_age), max_age)
    ages = rng.triangular(min_age, mode, max_age, size=n)
    days = (ages * 365.25).astype(np.int64)
    return (today - days.astype("timedelta64[D]")).astype("datetime64[D]")


def citizen_ids(
    rng: np.random.Generator,
    birth: npt.NDArray[np.datetime64],
    male: Bools,
    *,
    region: Strings | None = None,
    taken: Ints | None = None,
) -> Strings:
    """Unique 18-character citizen IDs (GB 11643): region, birth date, sequence, check digit
    (the text of :func:`citizen_id_bodies`)."""
    return id_text(citizen_id_bodies(rng, birth, male, region=region, taken=taken))


def citizen_id_bodies(
    rng: np.random.Generator,
    birth: npt.NDArray[np.datetime64],
    male: Bools,
    *,
    region: Strings | None = None,
    taken: Ints | None = None,
) -> Ints:
    """The 17-digit bodies of unique citizen IDs (GB 11643): region, birth date, sequence.

    The sequence is odd for men and even for women. ``taken`` holds 17-digit bodies
    already in use (earlier persons), which are never produced again. Made as numbers
    (8 bytes a person), not as the text of dates and region codes.
    """
    n = len(birth)
    years = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    if region is None:
        codes = np.array([int(r[0]) for r in BIRTH_REGIONS], dtype=np.int64)
        first_year = np.array([r[1] for r in BIRTH_REGIONS])
        fallback = np.array([int(r[2]) for r in BIRTH_REGIONS], dtype=np.int64)
        weights = np.array([r[3] for r in BIRTH_REGIONS])
        choice = rng.choice(len(codes), size=n, p=weights / weights.sum())
        region_code = np.where(years >= first_year[choice], codes[choice], fallback[choice])
        del choice
    else:
        region_code = region.astype(np.int64)
    prefix = region_code * 10**11 + ymd_numbers(birth) * 1000
    del years, region_code
    bodies = np.zeros(n, dtype=np.int64)
    used = np.zeros(0, dtype=np.int64) if taken is None else np.asarray(taken, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        # men odd 001..997, women even 002..998
        sequence = 2 * rng.integers(0, 499, len(todo)) + np.where(male[todo], 1, 2)
        bodies[todo] = prefix[todo] + sequence
        todo = _repeated(bodies, todo, used)
    return bodies


def ymd_numbers(dates: npt.NDArray[np.datetime64]) -> Ints:
    """Dates as the numbers YYYYMMDD (as ``int(str(date).replace("-", ""))``)."""
    day = dates.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    years = month.astype("datetime64[Y]").astype(np.int64) + 1970
    months = month.astype(np.int64) % 12 + 1
    days = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    ymd: Ints = years * 10_000 + months * 100 + days
    return ymd


def id_text(bodies: Ints) -> Strings:
    """Citizen IDs of 17-digit bodies: the body and its GB 11643 check digit."""
    if len(bodies) == 0:
        return np.zeros(0, dtype="<U18")
    text: Strings = np.strings.add(bodies.astype("<U17"), ric_check_digits(bodies))
    return text


def addresses(
    rng: np.random.Generator, district: Strings, *, with_room: bool = True, full: bool = True
) -> Lazy:
    """Street addresses in the given districts: street, 号, and 栋/单元/室 for flats.

    The numbers are drawn here (the same draws, in the same order, as ever); the text
    is made when the column is written (:class:`simulator.rows.Lazy`).
    """
    n = len(district)
    where = np.full(n, -1, dtype=np.int8)  # index into DISTRICTS
    street = np.zeros(n, dtype=np.int8)
    for position, item in enumerate(DISTRICTS):
        here = district == item.code
        where[here] = position
        street[here] = rng.choice(len(item.streets), size=int(here.sum()))
    number = rng.integers(1, 900, n).astype(np.int16)
    if not with_room:
        return lazy(_render_street if full else _render_street_short, where, street, number)
    room = (rng.integers(1, 19, n) * 100 + rng.integers(1, 5, n)).astype(np.int16)
    block = rng.integers(1, 30, n).astype(np.int8)
    entrance = rng.integers(1, 4, n).astype(np.int8)
    render = _render_flat if full else _render_flat_short
    return lazy(render, where, street, number, room, block, entrance)


_DISTRICT_NAMES = np.array([d.name for d in DISTRICTS] + [""], dtype="<U8")
_STREETS = np.array(
    [[*d.streets, *[""] * (8 - len(d.streets))] for d in DISTRICTS] + [[""] * 8], dtype="<U8"
)


def _street_text(where: Ints, street: Ints, number: Ints) -> Strings:
    names = np.strings.add(_DISTRICT_NAMES[where], _STREETS[where, street])
    return np.strings.add(np.strings.add(names, digits(number)), "号")


def _flat_text(room: Ints, block: Ints, entrance: Ints) -> Strings:
    flat = np.strings.add(np.strings.add(digits(block), "栋"), digits(entrance))
    return np.strings.add(np.strings.add(np.strings.add(flat, "单元"), digits(room)), "室")


def _render_street(where: Ints, street: Ints, number: Ints) -> Strings:
    return np.strings.add(CITY_PREFIX, _street_text(where, street, number))


def _render_street_short(where: Ints, street: Ints, number: Ints) -> Strings:
    return _street_text(where, street, number)


def _render_flat(
    where: Ints, street: Ints, number: Ints, room: Ints, block: Ints, entrance: Ints
) -> Strings:
    text = np.strings.add(_street_text(where, street, number), _flat_text(room, block, entrance))
    return np.strings.add(CITY_PREFIX, text)


def _render_flat_short(
    where: Ints, street: Ints, number: Ints, room: Ints, block: Ints, entrance: Ints
) -> Strings:
    return np.strings.add(_street_text(where, street, number), _flat_text(room, block, entrance))


def districts(rng: np.random.Generator, n: int) -> Strings:
    """Household districts weighted by population."""
    return pick(rng, tuple(d.code for d in DISTRICTS), n, [d.weight for d in DISTRICTS])


def make_people(
    rng: np.random.Generator,
    n: int,
    today: np.datetime64,
    *,
    min_age: float = 0,
    max_age: float = 92,
    taken: Ints | None = None,
    local_births: bool = False,
) -> People:
    """``n`` new residents; ``local_births`` gives IDs with the household district's code."""
    male = rng.random(n) < 0.508
    birth = birth_dates(rng, n, today, min_age=min_age, max_age=max_age)
    district = districts(rng, n)
    ids = citizen_id_bodies(
        rng, birth, male, region=district if local_births else None, taken=taken
    )
    return People(
        citizen_id_body=ids,
        name=person_names(rng, male),
        sex=np.where(male, "1", "2"),
        birth_date=birth,
        district=district,
        address=addresses(rng, district),
    )


def _repeated(values: npt.NDArray[Any], todo: Ints, used: npt.NDArray[Any]) -> Ints:
    """The entries of ``todo`` whose value repeats an earlier settled value or ``used``.

    Settled entries (not in ``todo``) win over new draws, so only ``todo`` entries redraw.
    """
    settled = np.setdiff1d(np.arange(len(values)), todo, assume_unique=True)
    order = np.concatenate([settled, todo])
    _, first = np.unique(values[order], return_index=True)
    unique = np.zeros(len(order), dtype=bool)
    unique[first] = True
    taken_before = np.isin(values[todo], used)
    return todo[~unique[len(settled) :] | taken_before]


def id_bodies(ids: Strings) -> Ints:
    """The 17-digit bodies of citizen IDs (to keep new IDs apart from existing ones)."""
    return np.strings.slice(np.asarray(ids, dtype="<U18"), 0, 17).astype(np.int64)


# ---------------------------------------------------------------- enterprises


@dataclass
class Firms:
    """Enterprises as parallel arrays."""

    credit_code: Strings
    name: Strings
    kind: Strings  # GB 32100 type character: '1' enterprise, '2' individual, '3' co-op
    established: npt.NDArray[np.datetime64]
    district: Strings
    address: Lazy


FIRST_FOUNDING = np.datetime64("1992-01-01")
_ORG_LETTERS = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))  # also valid in USCC


def credit_codes(
    rng: np.random.Generator,
    kind: Strings,
    district: Strings,
    established: npt.NDArray[np.datetime64],
    taken: Strings | None = None,
) -> Strings:
    """Unique unified social credit codes (GB 32100) registered by market regulation ('9').

    Enterprises registered since 2015 carry a new-style organisation code 'MA' + 6
    characters; older ones their 8-digit organisation code. Both end with the GB 11714
    check character, then the whole code with its GB 32100 check character.
    """
    n = len(kind)
    new_style = established >= np.datetime64("2015-10-01")
    codes = np.empty(n, dtype="<U18")
    used = (
        np.zeros(0, dtype="<U8")
        if taken is None
        else np.strings.slice(np.asarray(taken, dtype="<U18"), 8, 16)
    )
    todo = np.arange(n)
    while len(todo):
        m = len(todo)
        digits = np.strings.zfill(rng.integers(0, 10**8, m).astype("<U8"), 8)
        letters = _ORG_LETTERS[rng.integers(0, len(_ORG_LETTERS), (m, 6))]
        tail = np.ascontiguousarray(letters).view("<U6").ravel()
        org_body = np.where(new_style[todo], np.strings.add("MA", tail), digits)
        org = np.strings.add(org_body, org_check_chars(org_body))
        body = np.strings.add(np.strings.add(np.strings.add("9", kind[todo]), district[todo]), org)
        codes[todo] = np.strings.add(body, uscc_check_chars(body))
        # the organisation code identifies the enterprise: it must not repeat
        todo = _repeated(np.strings.slice(codes, 8, 16), todo, used)
    return codes


def enterprise_types(rng: np.random.Generator, kind: Strings) -> Strings:
    """企业类型 for the GB 32100 type characters of ``kind``."""
    company = pick(
        rng,
        (
            "有限责任公司（自然人投资或控股）",
            "有限责任公司（自然人独资）",
            "股份有限公司（非上市）",
            "有限责任公司（国有独资）",
            "个人独资企业",
        ),
        len(kind),
        (0.6, 0.22, 0.06, 0.04, 0.08),
    )
    types: Strings = np.where(
        kind == "1", company, np.where(kind == "2", "个体工商户", "农民专业合作社")
    )
    return types


def make_firms(
    rng: np.random.Generator,
    n: int,
    today: np.datetime64,
    *,
    founded_from: np.datetime64 = FIRST_FOUNDING,
    taken: Strings | None = None,
) -> Firms:
    """``n`` enterprises of the city, founded between ``founded_from`` and ``today``."""
    kind = pick(rng, ("1", "2", "3"), n, (0.72, 0.24, 0.04))
    span = int((today - founded_from).astype(np.int64))
    # more recent foundings: most registered companies are young
    established = founded_from + (span * rng.power(2.2, n)).astype("timedelta64[D]")
    district = districts(rng, n)
    trade = np.strings.add(pick(rng, TRADE_NAMES, n), pick(rng, TRADE_NAMES, n))
    company = np.strings.add(
        np.strings.add(np.strings.add("景德镇市", trade), pick(rng, INDUSTRIES, n)), "有限公司"
    )
    district_name = np.empty(n, dtype="<U4")
    for item in DISTRICTS:
        district_name[district == item.code] = item.name
    shop = np.strings.add(np.strings.add(district_name, trade), pick(rng, SHOP_KINDS, n))
    coop = np.strings.add(np.strings.add(district_name, trade), "农民专业合作社")
    name = np.where(kind == "1", company, np.where(kind == "2", shop, coop))
    return Firms(
        credit_code=credit_codes(rng, kind, district, established, taken),
        name=name,
        kind=kind,
        established=established,
        district=district,
        address=addresses(rng, district, with_room=False),
    )
