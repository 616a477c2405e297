"""Category vocabularies for the synthetic storefront: title words, tags, brands, prices.

Each category has the same number of words, nouns, tags and brands so the
generator can index them as 2-D arrays. Categories the built-in table does not
know get pseudo-words made deterministically from their name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

N_WORDS = 12
N_NOUNS = 8
N_TAGS = 8
N_BRANDS = 6


@dataclass(frozen=True)
class CategoryVocab:
    """The words a category's item titles, tags and brands are drawn from."""

    name: str
    words: tuple[str, ...]
    nouns: tuple[str, ...]
    tags: tuple[str, ...]
    brands: tuple[str, ...]
    median_price: float


def _v(name: str, words: str, nouns: str, tags: str, brands: str, price: float) -> CategoryVocab:
    vocab = CategoryVocab(name, tuple(words.split()), tuple(nouns.split()), tuple(tags.split()), tuple(brands.split()), price)
    assert (len(vocab.words), len(vocab.nouns), len(vocab.tags), len(vocab.brands)) == (N_WORDS, N_NOUNS, N_TAGS, N_BRANDS), name
    return vocab


BUILTIN: dict[str, CategoryVocab] = {
    v.name: v
    for v in [
        _v(
            "electronics",
            "wireless bluetooth smart portable digital noise-cancelling hd rechargeable usb-c compact ultra fast",
            "headphones speaker charger camera tablet monitor earbuds router",
            "gadget audio tech wireless battery video computing accessories",
            "Voltix Zentro Auralis Kinetica Pixelon Novatek",
            79.0,
        ),
        _v(
            "books",
            "bestselling illustrated classic hardcover paperback collected annotated mystery historical epic complete pocket",
            "novel anthology guide cookbook biography atlas memoir thriller",
            "reading fiction nonfiction literature gift-idea learning poetry history",
            "Quillhouse Inkwell Pageturn Fernleaf Lanternpress Marbleback",
            14.0,
        ),
        _v(
            "kitchen",
            "stainless nonstick cast-iron ceramic electric programmable insulated glass "
            "bamboo heavy-duty dishwasher-safe precision",
            "skillet blender kettle knife cookware mixer toaster container",
            "cooking baking kitchenware appliances storage dining coffee chef",
            "Copperpot Brightoven Saltgrain Whiskwell Hearthline Panterra",
            39.0,
        ),
        _v(
            "sports",
            "lightweight breathable waterproof adjustable foldable ergonomic reflective training trail carbon grip pro",
            "running-shoes yoga-mat dumbbell bike-helmet backpack tent racket bottle",
            "fitness outdoor running cycling camping gym team-sports hiking",
            "Strideon Peakform Kinetro Trailborn Apexa Velocore",
            45.0,
        ),
        _v(
            "toys",
            "colorful educational wooden interactive plush magnetic remote-control musical stacking glow creative junior",
            "puzzle building-blocks doll robot car teddy-bear board-game kite",
            "kids toddler stem playtime gift creative outdoor-play family",
            "Jollybox Tinkertot Brickly Puzzlepop Wonderkin Zoomzoo",
            22.0,
        ),
        _v(
            "beauty",
            "hydrating organic vegan fragrance-free matte nourishing gentle long-lasting brightening soothing natural firming",
            "serum moisturizer lipstick shampoo cleanser perfume mascara sunscreen",
            "skincare makeup haircare fragrance self-care cruelty-free spa routine",
            "Lumeria Velvetine Rosewell Purabloom Silkora Dewdrop",
            24.0,
        ),
        _v(
            "garden",
            "weatherproof solar cordless ergonomic galvanized raised self-watering heirloom perennial organic outdoor heavy-duty",
            "hose planter trowel pruner seed-kit lawn-mower lantern greenhouse",
            "gardening outdoor plants lawn patio watering tools seeds",
            "Greenthumb Mossgrove Sunpatch Rootwise Fernhill Bloomfield",
            34.0,
        ),
        _v(
            "fashion",
            "slim-fit cotton linen leather vintage oversized knitted tailored casual waterproof wool stretch",
            "jacket sneakers dress jeans scarf handbag sweater boots",
            "apparel menswear womenswear accessories footwear seasonal streetwear basics",
            "Threadline Urbanelle Norrow Kestrelle Mavenco Loomstead",
            55.0,
        ),
        _v(
            "music",
            "acoustic electric analog vintage studio beginner portable tuned handcrafted digital stereo professional",
            "guitar keyboard vinyl-record drum-pad microphone ukulele amplifier synthesizer",
            "instruments recording vinyl live-sound practice studio-gear songwriting audio",
            "Harmonix Chordwell Tonebird Resonar Basswood Melodia",
            89.0,
        ),
        _v(
            "pets",
            "grain-free chewable orthopedic washable interactive catnip durable natural calming reflective odor-control indoor",
            "dog-food cat-litter leash pet-bed scratcher aquarium chew-toy carrier",
            "dogs cats pet-care grooming treats aquatics training pet-toys",
            "Pawsome Whiskerly Furbridge Tailwag Petvana Barkley",
            27.0,
        ),
        _v(
            "automotive",
            "heavy-duty all-weather universal led synthetic magnetic portable "
            "high-performance scratch-resistant cordless premium compact",
            "car-charger floor-mat dash-cam jump-starter wiper seat-cover tire-inflator phone-mount",
            "car-care accessories maintenance safety tools interior exterior road-trip",
            "Torquemax Roadwise Gearlock Motorix Drivelane Sparkline",
            42.0,
        ),
        _v(
            "office",
            "ergonomic adjustable recycled refillable wireless minimalist stackable premium ruled magnetic quiet bamboo",
            "notebook desk-chair pen-set stapler planner desk-lamp organizer whiteboard",
            "stationery workspace productivity school supplies desk-setup writing organization",
            "Paperloft Deskwise Inkstone Clipwell Workora Notable",
            19.0,
        ),
    ]
}

_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ter",
    "zan",
    "bo",
    "ri",
    "vel",
    "su",
    "don",
    "pa",
    "ne",
    "tor",
    "li",
    "ga",
    "ruk",
    "mo",
    "sen",
    "fi",
    "dal",
)


def _pseudo_words(rng: np.random.Generator, count: int, used: set[str]) -> tuple[str, ...]:
    words: list[str] = []
    while len(words) < count:
        n = int(rng.integers(2, 4))
        word = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), size=n))
        if word not in used:
            used.add(word)
            words.append(word)
    return tuple(words)


def generated_vocab(name: str) -> CategoryVocab:
    """A vocabulary of pseudo-words for a category the built-in table lacks (stable per name)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    used: set[str] = set()
    return CategoryVocab(
        name=name,
        words=_pseudo_words(rng, N_WORDS, used),
        nouns=_pseudo_words(rng, N_NOUNS, used),
        tags=tuple(f"{name}-{w}" for w in _pseudo_words(rng, N_TAGS, used)),
        brands=tuple(w.capitalize() for w in _pseudo_words(rng, N_BRANDS, used)),
        median_price=float(np.round(np.exp(rng.uniform(np.log(8), np.log(150))), 2)),
    )


def category_vocabs(categories: int | list[str] | tuple[str, ...] | None) -> list[CategoryVocab]:
    """Vocabularies for ``categories``: None → the built-in 12, int n → n of them, or names."""
    if categories is None:
        return list(BUILTIN.values())
    if isinstance(categories, int):
        if categories < 1:
            raise ValueError("categories must be >= 1")
        builtin = list(BUILTIN.values())[:categories]
        extra = [generated_vocab(f"category{i + 1}") for i in range(len(builtin), categories)]
        return builtin + extra
    names = [str(c) for c in categories]
    if not names or len(set(names)) != len(names):
        raise ValueError("categories must be a non-empty list of distinct names")
    return [BUILTIN.get(n) or generated_vocab(n) for n in names]
