"""Deterministic, realistic people for the sandbox CRMs: names, companies, phones, social reach and touchpoints."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property, lru_cache
from typing import Generic, NamedTuple, TypeVar

import phonenumbers

from crm_desktop.domain.models import (
    LeadStatus,
    Sentiment,
    SocialPlatform,
    SocialProfile,
    Touchpoint,
    TouchpointType,
)

T = TypeVar("T")

#: Touchpoints fall in the half year before this instant, so the same seed always gives the same timestamps.
TOUCHPOINT_EPOCH = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TOUCHPOINT_SPAN_SECONDS = 180 * 24 * 3600

LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "customer")

#: Where a social lead came from, by network: each interaction and its weight. A lead source is named
#: ``<platform>_<interaction>`` (``twitter_dm``).
_LEAD_INTERACTIONS: dict[SocialPlatform, tuple[tuple[str, int], ...]] = {
    SocialPlatform.TWITTER: (("dm", 14), ("mention", 6)),
    SocialPlatform.INSTAGRAM: (("comment", 14), ("dm", 8)),
    SocialPlatform.LINKEDIN: (("message", 14), ("form", 6)),
    SocialPlatform.FACEBOOK: (("ad", 12), ("comment", 4)),
    SocialPlatform.TIKTOK: (("comment", 10),),
    SocialPlatform.YOUTUBE: (("comment", 4),),
    SocialPlatform.THREADS: (("reply", 3),),
    SocialPlatform.REDDIT: (("dm", 2),),
    SocialPlatform.PINTEREST: (("pin", 3),),
}
#: Every lead source: its name, network and weight, in the order the weighted draw is built in.
LEAD_SOURCES: tuple[tuple[str, SocialPlatform, int], ...] = tuple(
    (f"{platform.value}_{interaction}", platform, weight)
    for platform, interactions in _LEAD_INTERACTIONS.items()
    for interaction, weight in interactions
)

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas",
    "Mia", "Levi", "Charlotte", "Ethan", "Harper", "James", "Evelyn", "Aiden", "Luna", "Sebastian", "Camila",
    "Benjamin", "Gianna", "Henry", "Aria", "Theodore", "Ella", "Jack", "Nora", "Wei", "Mei", "Hiroshi", "Yuki",
    "Aarav", "Priya", "Arjun", "Ananya", "Mohammed", "Fatima", "Omar", "Aisha", "Chinedu", "Ngozi", "Kwame", "Amara",
    "Santiago", "Valentina", "Diego", "Lucía", "João", "Beatriz", "Léa", "Hugo", "Chloé", "Louis", "Lukas", "Hannah",
    "Finn", "Marie", "Sven", "Ingrid", "Astrid", "Lars", "Mikhail", "Anastasia", "Dmitri", "Olga", "Katarzyna",
    "Piotr", "Zoë", "Siobhan", "Niamh", "Cian", "Rhys", "Megan", "Tariq", "Leila", "Kai", "Leilani", "Mateus",
    "Ximena", "Renée", "Björn", "Søren", "Ayşe", "Emre", "Min-jun", "Seo-yeon", "Thanh", "Linh", "Rafael", "Inès",
    "Jamal", "Keisha", "DeShawn", "Imani", "Grace", "Daniel", "Samuel", "Ruth", "Naomi", "Elena", "Marco", "Giulia",
)

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Wang", "Li", "Zhang", "Kim", "Park", "Tanaka",
    "Suzuki", "Sato", "Patel", "Shah", "Singh", "Kumar", "Gupta", "Khan", "Ahmed", "Hassan", "Okafor", "Adeyemi",
    "Mensah", "Silva", "Santos", "Oliveira", "Costa", "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Dubois",
    "Lefèvre", "Moreau", "Rossi", "Russo", "Bianchi", "Novak", "Kowalski", "Nowak", "Ivanova", "Petrov", "Johansson",
    "Andersson", "Nielsen", "Hansen", "O'Brien", "O'Connor", "Murphy", "Kelly", "McCarthy", "Byrne", "Fitzgerald",
    "Jensen", "Van der Berg", "De Vries", "Öztürk", "Kaya", "Tran", "Pham", "Haddad", "Cohen", "Levi", "Da Silva",
)

COMPANY_WORDS_A = (
    "Northwind", "Bluebird", "Lumen", "Cobalt", "Evergreen", "Summit", "Harbor", "Pioneer", "Atlas", "Nimbus",
    "Brightwave", "Redwood", "Silverline", "Keystone", "Orbit", "Meridian", "Tidal", "Granite", "Velvet", "Copper",
    "Sparrow", "Juniper", "Quartz", "Helix", "Beacon", "Maple", "Ember", "Falcon", "Aurora", "Cascade", "Nova",
    "Saffron", "Fable", "Kindred", "Willow", "Lark", "Boreal", "Crimson", "Golden Gate", "Sunday",
)
COMPANY_WORDS_B = (
    "Labs", "Studio", "Coffee", "Outfitters", "Analytics", "Media", "Foods", "Health", "Apparel", "Software",
    "Fitness", "Travel", "Games", "Cosmetics", "Logistics", "Financial", "Robotics", "Bakery", "Records", "Design",
)
COMPANY_SUFFIXES = ("", "", "", " Inc.", " LLC", " Ltd", " Co.", " GmbH")
DOMAIN_TLDS = ("com", "com", "com", "io", "co", "net", "ai", "shop", "co.uk", "de")

JOB_TITLES = (
    "Marketing Manager", "Head of Growth", "Social Media Manager", "Content Strategist", "Brand Manager",
    "Community Manager", "VP Marketing", "Chief Marketing Officer", "Founder", "Co-founder & CEO", "Product Manager",
    "Sales Director", "Account Executive", "Business Development Manager", "Creative Director", "Copywriter",
    "E-commerce Manager", "Digital Marketing Specialist", "Operations Manager", "Influencer Partnerships Lead",
    "Customer Success Manager", "Data Analyst", "Software Engineer", "Designer", "Photographer", "Store Owner",
)

CAMPAIGNS = (
    "Spring Launch 2025", "Summer Sale 2025", "Back to School 2025", "Black Friday 2025", "Cyber Monday 2025",
    "Holiday Gift Guide 2025", "New Year Reset 2026", "Creator Collab Q4", "Always-on Retargeting",
    "Product Hunt Launch",
    "Webinar: Social Selling 101", "UGC Contest", "Referral Program", "Brand Awareness EMEA", "TikTok Challenge",
    "LinkedIn Thought Leadership", "Instagram Giveaway", "Customer Stories", "Early Access Beta", "Podcast Season 2",
)

class SocialNetwork(NamedTuple):
    """What the generator knows of one social network."""

    #: How common a profile there is among a brand's audience (a weight).
    profile_weight: int
    #: The profile's public address, ``{}`` standing for the username.
    profile_url: str
    #: What a conversation id on the network starts with.
    conversation_prefix: str


#: The networks people have profiles on, most common first (the order the weighted draw is built in).
SOCIAL_NETWORKS: dict[SocialPlatform, SocialNetwork] = {
    SocialPlatform.INSTAGRAM: SocialNetwork(26, "https://www.instagram.com/{}/", "ig"),
    SocialPlatform.LINKEDIN: SocialNetwork(22, "https://www.linkedin.com/in/{}", "li"),
    SocialPlatform.TWITTER: SocialNetwork(20, "https://x.com/{}", "tw"),
    SocialPlatform.FACEBOOK: SocialNetwork(12, "https://www.facebook.com/{}", "fb"),
    SocialPlatform.TIKTOK: SocialNetwork(10, "https://www.tiktok.com/@{}", "tt"),
    SocialPlatform.YOUTUBE: SocialNetwork(4, "https://www.youtube.com/@{}", "yt"),
    SocialPlatform.THREADS: SocialNetwork(3, "https://www.threads.net/@{}", "th"),
    SocialPlatform.PINTEREST: SocialNetwork(2, "https://www.pinterest.com/{}/", "pin"),
    SocialPlatform.REDDIT: SocialNetwork(1, "https://www.reddit.com/user/{}", "rd"),
}

TOUCHPOINT_TYPES: tuple[tuple[TouchpointType, int], ...] = (
    (TouchpointType.POST_VIEW, 30),
    (TouchpointType.LIKE, 22),
    (TouchpointType.CLICK, 14),
    (TouchpointType.COMMENT, 10),
    (TouchpointType.FOLLOW, 7),
    (TouchpointType.SHARE, 6),
    (TouchpointType.DM, 5),
    (TouchpointType.MENTION, 4),
    (TouchpointType.FORM_SUBMIT, 2),
)

#: Phone number stems (E.164 without the last digits) and how many digits follow, by country, weighted.
#: Each stem is checked with phonenumbers when first used, so a stem that stops being valid is dropped, not emitted.
_PHONE_STEMS: tuple[tuple[str, tuple[str, ...], int, int], ...] = (
    # US: area code + first digit of the exchange, six digits follow.
    ("US", tuple(f"+1{area}{first}" for area in (
        "212", "213", "206", "305", "312", "404", "415", "469", "503", "512", "617", "646", "702", "713", "720",
        "773", "818", "917", "929", "971",
    ) for first in "23456789"), 6, 45),
    ("CA", tuple(f"+1{area}{first}" for area in ("416", "604", "514", "403", "613") for first in "2345679"), 6, 6),
    ("GB", tuple(f"+447{block}" for block in ("400", "411", "450", "507", "700", "720", "730", "760", "790", "800",
                                              "900", "950")), 6, 12),
    ("DE", tuple(f"+49{block}" for block in ("1512", "1520", "1570", "1601", "1701", "1761")), 7, 6),
    ("FR", tuple(f"+33{block}" for block in ("612", "623", "645", "678", "712", "756")), 6, 6),
    ("ES", tuple(f"+34{block}" for block in ("612", "622", "655", "688")), 6, 4),
    ("AU", tuple(f"+61{block}" for block in ("412", "423", "438", "450", "488")), 6, 5),
    ("IN", tuple(f"+91{block}" for block in ("98100", "98200", "99000", "81234", "70000")), 5, 5),
    ("BR", tuple(f"+55{block}" for block in ("1196", "2198", "3199", "4199")), 7, 5),
    ("NL", tuple(f"+31{block}" for block in ("612", "623", "644", "655")), 6, 3),
    ("SE", tuple(f"+46{block}" for block in ("701", "702", "730", "760")), 6, 3),
)


class ProfileFacts(NamedTuple):
    """The plain facts of one social profile (what seeds need, without building a model)."""

    platform: SocialPlatform
    username: str
    url: str
    followers: int
    engagement: float


@dataclass(frozen=True)
class GeneratedPerson:
    """One synthetic person of the marketing team's audience, as seeded into a sandbox CRM.

    ``social_profiles`` (validated domain models) are built on first use from ``profile_facts``, and
    ``touchpoints`` from ``detail_seed``, so generating and seeding 100,000 people stays fast.

    Attributes:
        email: unique, lower-case ``firstname.lastname@company_domain`` (a number is added on a clash).
        first_name, last_name, company, company_domain, job_title: who they are.
        phone: E.164, valid for its country.
        website: the company's site.
        lifecycle: ``subscriber``, ``lead``, ``marketingqualifiedlead``, ``salesqualifiedlead`` or ``customer``.
        is_lead: whether the person is (also) an open lead (about 30%).
        lead_source: the social interaction they came from, e.g. ``twitter_dm``.
        lead_status: where the lead stands (``converted`` for customers, ``new`` for other non-leads).
        sentiment: the sentiment of their conversation with the brand.
        engagement_score: 0..100.
        conversation_id: the social conversation they came from, e.g. ``tw-conv-5f3a...``.
        campaign: the campaign that reached them.
        profile_facts: the plain facts of their social profiles (platform, username, url, followers, engagement).
        detail_seed: the seed of their touchpoints.
        social_profiles: one to three profiles on distinct networks (the first on the lead source's network),
            with a long-tail follower count and an engagement rate in percent.
        touchpoints: one to six interactions with the brand's content, oldest first.
    """

    email: str
    first_name: str
    last_name: str
    company: str
    company_domain: str
    phone: str
    job_title: str
    website: str
    lifecycle: str
    is_lead: bool
    lead_source: str
    lead_status: LeadStatus
    sentiment: Sentiment
    engagement_score: float
    conversation_id: str
    campaign: str
    profile_facts: tuple[ProfileFacts, ...]
    detail_seed: int

    @property
    def social_platform(self) -> SocialPlatform:
        """The network the person came from (the platform of :attr:`lead_source`)."""
        return _SOURCE_PLATFORM[self.lead_source]

    @property
    def total_followers(self) -> int:
        """Followers summed over every profile."""
        return sum(facts.followers for facts in self.profile_facts)

    def facts_on(self, platform: SocialPlatform) -> ProfileFacts | None:
        """The plain facts of the person's profile on ``platform``, if they have one."""
        return next((facts for facts in self.profile_facts if facts.platform is platform), None)

    @cached_property
    def social_profiles(self) -> list[SocialProfile]:
        """One to three profiles on distinct networks, the first on the network the person came from."""
        return [
            SocialProfile(
                platform=facts.platform,
                username=facts.username,
                url=facts.url,
                followers=facts.followers,
                engagement=facts.engagement,
            )
            for facts in self.profile_facts
        ]

    @cached_property
    def touchpoints(self) -> list[Touchpoint]:
        """One to six interactions with the brand's content, oldest first."""
        return _touchpoints(random.Random(self.detail_seed ^ _TOUCHPOINT_SALT), self)

    def profile(self, platform: SocialPlatform) -> SocialProfile | None:
        """The person's profile on ``platform``, if they have one."""
        return next((p for p in self.social_profiles if p.platform is platform), None)


_SOURCE_PLATFORM = {name: platform for name, platform, _ in LEAD_SOURCES}
_SOURCE_PREFIX = {name: SOCIAL_NETWORKS[platform].conversation_prefix for name, platform, _ in LEAD_SOURCES}


#: Letters that Unicode does not decompose into an ASCII base letter.
_ASCII_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "ß": "ss", "ł": "l", "đ": "d", "\u0131": "i", "œ": "oe"})


@lru_cache(maxsize=4096)
def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits of ``text``: ``"Søren"`` -> ``"soren"``, ``"O'Brien"`` -> ``"obrien"``."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_ASCII_LETTERS))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())


@cache
def _companies() -> tuple[tuple[str, str], ...]:
    """Every (company name, domain) pair the generator picks from, in a fixed order."""
    picker = random.Random(20260115)
    companies = []
    for first in COMPANY_WORDS_A:
        for second in COMPANY_WORDS_B:
            suffix = picker.choice(COMPANY_SUFFIXES)
            tld = picker.choice(DOMAIN_TLDS)
            style = picker.random()
            base = ascii_slug(first) if style < 0.25 else ascii_slug(first) + ascii_slug(second)
            if style > 0.85:
                base = f"{ascii_slug(first)}-{ascii_slug(second)}"
            companies.append((f"{first} {second}{suffix}", f"{base}.{tld}"))
    return tuple(companies)


def _stem_is_valid(stem: str, tail_digits: int) -> bool:
    for tail in ("0" * tail_digits, "9" * tail_digits, ("37" * tail_digits)[:tail_digits]):
        try:
            number = phonenumbers.parse(stem + tail)
        except phonenumbers.NumberParseException:
            return False
        if not phonenumbers.is_valid_number(number):
            return False
    return True


@cache
def _phone_stems() -> tuple[tuple[tuple[str, ...], int], ...]:
    """Per country: the stems that phonenumbers accepts and the digit count after them; weighted by repetition."""
    weighted: list[tuple[tuple[str, ...], int]] = []
    for _region, stems, tail_digits, weight in _PHONE_STEMS:
        valid = tuple(stem for stem in stems if _stem_is_valid(stem, tail_digits))
        if valid:
            weighted.extend([(valid, tail_digits)] * weight)
    return tuple(weighted)


def _followers(rng: random.Random) -> int:
    """Long tail (Pareto): most people have a few hundred followers, a few have millions."""
    return min(int(40 * rng.paretovariate(1.1)) + rng.randrange(0, 40), 80_000_000)


def _engagement_rate(rng: random.Random, followers: int) -> float:
    """Percent of followers who engage with a post; small accounts engage more."""
    base = 6.0 if followers < 1_000 else 3.5 if followers < 10_000 else 2.0 if followers < 100_000 else 1.0
    return round(min(100.0, rng.lognormvariate(0.0, 0.6) * base), 2)


def _username(rng: random.Random, first_slug: str, last_slug: str) -> str:
    style = rng.randrange(6)
    if style == 0:
        return f"{first_slug}{last_slug}"
    if style == 1:
        return f"{first_slug}.{last_slug}"
    if style == 2:
        return f"{first_slug}_{last_slug}{rng.randrange(1, 100)}"
    if style == 3:
        return f"{first_slug[0]}{last_slug}"
    if style == 4:
        return f"{first_slug}{rng.randrange(1970, 2006)}"
    return f"the{first_slug}{last_slug[:3]}"


class _Weighted(Generic[T]):
    """Draws from a weighted table with one random number (``random.choices`` is too slow for 100,000 people)."""

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        self._table: list[T] = [item for item, weight in items for _ in range(weight)]
        self._size = len(self._table)

    def draw(self, rng: random.Random) -> T:
        return self._table[int(rng.random() * self._size)]


_PROFILE_COUNTS = _Weighted([(1, 45), (2, 35), (3, 20)])
_TOUCH_COUNTS = _Weighted([(1, 25), (2, 25), (3, 20), (4, 14), (5, 10), (6, 6)])
_SOURCES = _Weighted([(name, weight) for name, _, weight in LEAD_SOURCES])
_PLATFORMS = _Weighted([(platform, network.profile_weight) for platform, network in SOCIAL_NETWORKS.items()])
_TOUCH_TYPES = _Weighted(TOUCHPOINT_TYPES)
_SENTIMENTS = _Weighted(
    [(Sentiment.POSITIVE, 45), (Sentiment.NEUTRAL, 35), (Sentiment.NEGATIVE, 12), (Sentiment.MIXED, 8)]
)
_OPEN_LEAD_STATUSES = _Weighted(
    [(LeadStatus.NEW, 45), (LeadStatus.CONTACTED, 30), (LeadStatus.QUALIFIED, 18), (LeadStatus.UNQUALIFIED, 7)]
)
_LEAD_STAGES = _Weighted([("lead", 55), ("marketingqualifiedlead", 30), ("salesqualifiedlead", 15)])
_CONTACT_STAGES = _Weighted([("subscriber", 70), ("customer", 30)])
_TOUCHPOINT_SALT = 0x5EED_70C4


def _profile_facts(
    rng: random.Random, source_platform: SocialPlatform, first_slug: str, last_slug: str
) -> tuple[ProfileFacts, ...]:
    profile_count = _PROFILE_COUNTS.draw(rng)
    chosen = [source_platform]
    while len(chosen) < profile_count:
        candidate = _PLATFORMS.draw(rng)
        if candidate not in chosen:
            chosen.append(candidate)
    facts = []
    for platform in chosen:
        username = _username(rng, first_slug or "user", last_slug or "x")
        followers = _followers(rng)
        facts.append(
            ProfileFacts(
                platform=platform,
                username=username,
                url=SOCIAL_NETWORKS[platform].profile_url.format(username),
                followers=followers,
                engagement=_engagement_rate(rng, followers),
            )
        )
    return tuple(facts)


def _touchpoints(rng: random.Random, person: GeneratedPerson) -> list[Touchpoint]:
    source_platform = person.social_platform
    platforms = [facts.platform for facts in person.profile_facts]
    count = _TOUCH_COUNTS.draw(rng)
    offsets = sorted(rng.randrange(TOUCHPOINT_SPAN_SECONDS) for _ in range(count))
    touchpoints = []
    for index, offset in enumerate(offsets):
        platform = source_platform if index == 0 else rng.choice(platforms)
        touchpoints.append(
            Touchpoint(
                timestamp=TOUCHPOINT_EPOCH - timedelta(seconds=TOUCHPOINT_SPAN_SECONDS - offset),
                platform=platform,
                type=_TOUCH_TYPES.draw(rng),
                post_id=f"post_{rng.getrandbits(40):010x}",
                conversation_id=person.conversation_id if platform is source_platform else None,
                campaign=person.campaign if index == 0 or rng.random() < 0.6 else rng.choice(CAMPAIGNS),
            )
        )
    return touchpoints


def generate_people(count: int, seed: int) -> list[GeneratedPerson]:
    """``count`` realistic people; the same ``(count, seed)`` always gives the same people.

    The list for a smaller ``count`` is a prefix of the list for a larger one with the same seed.

    Raises:
        ValueError: when ``count`` is negative.
    """
    if count < 0:
        raise ValueError("count must be zero or more")
    rng = random.Random(seed)
    companies = _companies()
    phone_stems = _phone_stems()
    first_names = [(name, ascii_slug(name)) for name in FIRST_NAMES]
    last_names = [(name, ascii_slug(name)) for name in LAST_NAMES]
    seen_emails: dict[str, int] = {}
    people: list[GeneratedPerson] = []
    for _ in range(count):
        first, first_slug = rng.choice(first_names)
        last, last_slug = rng.choice(last_names)
        company, domain = rng.choice(companies)
        local = f"{first_slug}.{last_slug}"
        # Slugs of names hold no digits, so a numbered address can never clash with a plain one.
        base_email = f"{local}@{domain}"
        clashes = seen_emails.get(base_email, 0) + 1
        seen_emails[base_email] = clashes
        email = base_email if clashes == 1 else f"{local}{clashes}@{domain}"

        stems, tail_digits = rng.choice(phone_stems)
        phone = rng.choice(stems) + str(rng.randrange(10**tail_digits)).zfill(tail_digits)

        lead_source = _SOURCES.draw(rng)
        profile_facts = _profile_facts(rng, _SOURCE_PLATFORM[lead_source], first_slug, last_slug)
        is_lead = rng.random() < 0.3
        if is_lead:
            lifecycle = _LEAD_STAGES.draw(rng)
            lead_status = _OPEN_LEAD_STATUSES.draw(rng)
        else:
            lifecycle = _CONTACT_STAGES.draw(rng)
            lead_status = LeadStatus.CONVERTED if lifecycle == "customer" else LeadStatus.NEW
        people.append(
            GeneratedPerson(
                email=email,
                first_name=first,
                last_name=last,
                company=company,
                company_domain=domain,
                phone=phone,
                job_title=rng.choice(JOB_TITLES),
                website=f"https://www.{domain}",
                lifecycle=lifecycle,
                is_lead=is_lead,
                lead_source=lead_source,
                lead_status=lead_status,
                sentiment=_SENTIMENTS.draw(rng),
                engagement_score=round(min(100.0, max(0.0, rng.gauss(48, 20))), 1),
                conversation_id=f"{_SOURCE_PREFIX[lead_source]}-conv-{rng.getrandbits(48):012x}",
                campaign=rng.choice(CAMPAIGNS),
                profile_facts=profile_facts,
                detail_seed=rng.getrandbits(64),
            )
        )
    return people
