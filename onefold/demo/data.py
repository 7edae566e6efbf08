"""Static reference tables for the demo data generator (names, places, products, devices, campaigns).

All tables are plain constants so the generator stays pure and deterministic. The demo retailer is the
fictional "Larkspur Outfitters" at ``www.larkspur.example`` (a reserved ``.example`` domain).
"""

from __future__ import annotations

from typing import Final


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


BRAND: Final = "Larkspur Outfitters"
SITE: Final = "https://www.larkspur.example"

FIRST_NAMES: Final = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty "
    "Anthony Sandra Mark Margaret Steven Ashley Andrew Kimberly Joshua Emily Kevin Donna Brian "
    "Michelle George Carol Timothy Amanda Ryan Melissa Jacob Deborah Nicholas Stephanie Jose Maria "
    "Luis Sofia Carlos Camila Diego Valentina Wei Mei Hiroshi Yuki Priya Arjun Aisha Omar Fatima "
    "Hassan Chloe Liam Olivia Noah Emma Ethan Ava Mason Isabella Lucas Mia Logan Harper Elijah Evelyn "
    "Aiden Abigail Jackson Ella Sebastian Scarlett Mateo Grace Owen Lily Gabriel Zoe Julien Camille "
    "Etienne Amelie Nathan Leah Samuel Hannah"
)

LAST_NAMES: Final = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Chen Wang Kim Patel "
    "Singh Tanaka Sato Cohen Murphy O'Brien Kelly Sullivan Tremblay Gagnon Roy Cote Bouchard Gauthier "
    "Morin Lavoie Fortin Ali Khan Ahmed Novak Kowalski Schmidt Muller Rossi Russo Silva Santos Ortiz "
    "Reyes Morales Cruz Gutierrez Ward Cooper Reed Bailey Bell Howard Brooks Price Bennett Wood "
    "Barnes Ross Henderson Coleman Jenkins"
)

STREETS: Final = (
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake Rd",
    "Hill St",
    "Park Ave",
    "Sunset Blvd",
    "River Rd",
    "Church St",
    "Highland Ave",
    "Forest Dr",
    "Spring St",
)

# (city, state/province, country, IANA time zone, UTC offset in hours (standard time), area codes,
#  postal-code prefix, relative weight). About 88% of the weight is in the US and 12% in Canada.
CITIES: Final = (
    ("New York", "NY", "US", "America/New_York", -5, ("212", "646", "718", "917"), "100", 14),
    ("Los Angeles", "CA", "US", "America/Los_Angeles", -8, ("213", "310", "323", "818"), "900", 11),
    ("Chicago", "IL", "US", "America/Chicago", -6, ("312", "773", "872"), "606", 8),
    ("Houston", "TX", "US", "America/Chicago", -6, ("713", "281", "832"), "770", 6),
    ("Phoenix", "AZ", "US", "America/Phoenix", -7, ("602", "480", "623"), "850", 4),
    ("Philadelphia", "PA", "US", "America/New_York", -5, ("215", "267"), "191", 4),
    ("San Antonio", "TX", "US", "America/Chicago", -6, ("210", "726"), "782", 3),
    ("San Diego", "CA", "US", "America/Los_Angeles", -8, ("619", "858"), "921", 3),
    ("Dallas", "TX", "US", "America/Chicago", -6, ("214", "469", "972"), "752", 5),
    ("Austin", "TX", "US", "America/Chicago", -6, ("512", "737"), "787", 3),
    ("Seattle", "WA", "US", "America/Los_Angeles", -8, ("206", "425"), "981", 4),
    ("Denver", "CO", "US", "America/Denver", -7, ("303", "720"), "802", 3),
    ("Boston", "MA", "US", "America/New_York", -5, ("617", "857"), "021", 4),
    ("Atlanta", "GA", "US", "America/New_York", -5, ("404", "470", "678"), "303", 4),
    ("Miami", "FL", "US", "America/New_York", -5, ("305", "786"), "331", 4),
    ("Portland", "OR", "US", "America/Los_Angeles", -8, ("503", "971"), "972", 2),
    ("San Francisco", "CA", "US", "America/Los_Angeles", -8, ("415", "628"), "941", 4),
    ("Minneapolis", "MN", "US", "America/Chicago", -6, ("612", "763"), "554", 2),
    ("Nashville", "TN", "US", "America/Chicago", -6, ("615", "629"), "372", 2),
    ("Charlotte", "NC", "US", "America/New_York", -5, ("704", "980"), "282", 2),
    ("Toronto", "ON", "CA", "America/Toronto", -5, ("416", "647", "437"), "M", 6),
    ("Vancouver", "BC", "CA", "America/Vancouver", -8, ("604", "778"), "V", 3),
    ("Montreal", "QC", "CA", "America/Toronto", -5, ("514", "438"), "H", 3),
    ("Calgary", "AB", "CA", "America/Edmonton", -7, ("403", "587"), "T", 2),
)

# Cities (by index into CITIES) that have physical stores, with the number of stores.
STORE_CITIES: Final = (
    (0, 3),
    (1, 2),
    (2, 2),
    (3, 1),
    (4, 1),
    (5, 1),
    (8, 1),
    (9, 1),
    (10, 1),
    (11, 1),
    (12, 1),
    (13, 1),
    (14, 1),
    (16, 1),
    (20, 2),
    (21, 1),
    (22, 1),
)
# Stores whose older point-of-sale firmware sends the nil UUID as anonymousId.
LEGACY_POS_EVERY: Final = 6

EMAIL_DOMAINS: Final = (
    ("gmail.com", 46),
    ("yahoo.com", 11),
    ("outlook.com", 9),
    ("hotmail.com", 7),
    ("icloud.com", 12),
    ("aol.com", 3),
    ("comcast.net", 3),
    ("protonmail.com", 2),
    ("hey.com", 1),
    ("me.com", 2),
    ("sympatico.ca", 1),
    ("shaw.ca", 1),
    ("live.com", 2),
)
EMAIL_DOMAIN_TYPOS: Final = {
    "gmail.com": ("gmial.com", "gmal.com", "gmail.co", "gnail.com", "gmaill.com"),
    "yahoo.com": ("yaho.com", "yahooo.com", "yahoo.co"),
    "outlook.com": ("outlok.com", "outloo.com"),
    "hotmail.com": ("hotmial.com", "hotmail.co", "hotmal.com"),
    "icloud.com": ("iclod.com", "icoud.com"),
    "aol.com": ("aol.co",),
    "comcast.net": ("comcast.ent", "comcat.net"),
}

PLACEHOLDER_EMAILS: Final = ("none@none.com", "test@test.com")
PLACEHOLDER_PHONE: Final = "0000000000"
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"

# category -> (adjectives, nouns, min price, max price)
PRODUCT_LINES: Final = {
    "Apparel": (
        ("Merino", "Organic Cotton", "Linen", "Fleece", "Performance", "Heritage", "Everyday"),
        ("Crew Tee", "Hoodie", "Overshirt", "Joggers", "Chinos", "Rain Jacket", "Puffer Vest", "Cardigan"),
        24.0,
        189.0,
    ),
    "Footwear": (
        ("Trail", "City", "Waterproof", "Classic", "Lightweight"),
        ("Runner", "Chelsea Boot", "Sneaker", "Hiking Boot", "Slip-On", "Sandal"),
        49.0,
        229.0,
    ),
    "Accessories": (
        ("Canvas", "Leather", "Recycled", "Packable", "Wool"),
        ("Tote", "Backpack", "Beanie", "Belt", "Wallet", "Scarf", "Cap", "Gloves"),
        14.0,
        139.0,
    ),
    "Home": (
        ("Stoneware", "Linen", "Cedar", "Woven", "Enamel"),
        ("Mug Set", "Throw Blanket", "Candle", "Planter", "Cutting Board", "Pillow Cover"),
        12.0,
        119.0,
    ),
    "Outdoor": (
        ("Ultralight", "Insulated", "Trekking", "Camp", "Alpine"),
        ("Water Bottle", "Daypack", "Sleeping Pad", "Headlamp", "Camp Chair", "Poles"),
        18.0,
        249.0,
    ),
}
COLORS: Final = ("BLK", "NVY", "OLV", "GRY", "SND", "RST", "WHT", "BLU")

SEARCH_TERMS: Final = (
    "rain jacket",
    "hoodie",
    "boots",
    "merino",
    "backpack",
    "gift",
    "sale",
    "linen shirt",
    "sneakers",
    "beanie",
    "water bottle",
    "candle",
    "mens chinos",
    "womens joggers",
    "waterproof",
    "tote bag",
)

DESKTOP_UAS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
)
IOS_WEB_UA: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
ANDROID_WEB_UA: Final = (
    "Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36"
)

# (manufacturer, model, marketing name, os version, screen width, screen height)
IOS_PHONES: Final = (
    ("Apple", "iPhone14,5", "iPhone 13", "17.6.1", 390, 844),
    ("Apple", "iPhone15,2", "iPhone 14 Pro", "18.0.1", 393, 852),
    ("Apple", "iPhone15,4", "iPhone 15", "18.1", 393, 852),
    ("Apple", "iPhone16,2", "iPhone 15 Pro Max", "18.1", 430, 932),
    ("Apple", "iPhone17,1", "iPhone 16 Pro", "18.1", 402, 874),
)
ANDROID_PHONES: Final = (
    ("samsung", "SM-S918U", "Galaxy S23 Ultra", "14", 384, 824),
    ("samsung", "SM-A546U", "Galaxy A54", "14", 412, 915),
    ("Google", "Pixel 8", "Pixel 8", "15", 412, 915),
    ("Google", "Pixel 7a", "Pixel 7a", "14", 412, 915),
    ("motorola", "moto g power 5G - 2024", "moto g power", "14", 412, 915),
    ("OnePlus", "CPH2449", "OnePlus 11", "14", 412, 919),
)
IOS_TABLETS: Final = (
    ("Apple", "iPad13,18", "iPad (10th generation)", "18.0", 820, 1180),
    ("Apple", "iPad14,1", "iPad mini (6th generation)", "17.6", 744, 1133),
)
ANDROID_TABLETS: Final = (("samsung", "SM-X710", "Galaxy Tab S9", "14", 800, 1280),)
CARRIERS: Final = ("Verizon", "T-Mobile", "AT&T", "Rogers", "Bell", "Telus")
APP_VERSIONS: Final = (("5.1.0", "5100"), ("5.2.2", "5220"), ("5.3.1", "5310"))
APP_NAMESPACE_IOS: Final = "com.larkspur.shop"
APP_NAMESPACE_ANDROID: Final = "com.larkspur.android"

LIBRARIES: Final = {
    "website": ("analytics.js", "next-1.72.0"),
    "ios-app": ("analytics-swift", "1.6.1"),
    "android-app": ("analytics-kotlin", "1.16.3"),
    "shop": ("analytics-node", "2.1.2"),
    "crm": ("crm-contact-sync", "3.4.0"),
    "pos": ("pos-connector", "2.8.1"),
    "email": ("esp-webhooks", "1.9.2"),
    "sms": ("sms-webhooks", "1.2.0"),
}

REFERRERS: Final = (
    ("", 36),
    ("https://www.google.com/", 36),
    ("https://www.bing.com/", 4),
    ("https://duckduckgo.com/", 3),
    ("https://www.facebook.com/", 7),
    ("https://www.instagram.com/", 7),
    ("https://www.pinterest.com/", 4),
    ("https://www.reddit.com/", 3),
)
# (source, medium, campaign name) for paid landings
AD_CAMPAIGNS: Final = (
    ("google", "cpc", "brand_search"),
    ("google", "cpc", "nonbrand_outerwear"),
    ("google", "shopping", "pla_all_products"),
    ("facebook", "paid_social", "prospecting_lookalike"),
    ("instagram", "paid_social", "retargeting_cart"),
    ("tiktok", "paid_social", "fall_creators"),
    ("affiliate", "referral", "deal_sites"),
)

EMAIL_THEMES: Final = (
    "New Arrivals",
    "Members Save 20%",
    "Weekend Flash Sale",
    "Layering Guide",
    "Staff Picks",
    "Last Chance",
    "Free Shipping Weekend",
    "Trail Ready",
    "Cozy Home Edit",
    "Gift Guide",
)
HOUR_WEIGHTS: Final = (
    1.0,
    0.6,
    0.4,
    0.3,
    0.3,
    0.5,
    1.0,
    2.0,
    3.0,
    4.0,
    4.5,
    5.0,
    5.5,
    5.0,
    5.0,
    5.0,
    5.5,
    6.0,
    7.0,
    8.0,
    8.5,
    7.5,
    5.0,
    2.5,
)
