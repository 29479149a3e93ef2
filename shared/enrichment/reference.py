"""Small reference tables shipped with the code (nothing is fetched at run time)."""

# Common free-mail providers (lower-case domains).
FREE_MAIL = frozenset("""
gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr ymail.com hotmail.com hotmail.co.uk hotmail.fr outlook.com
live.com live.co.uk msn.com aol.com icloud.com me.com mac.com gmx.com gmx.de gmx.net web.de mail.com protonmail.com
proton.me zoho.com yandex.com yandex.ru mail.ru btinternet.com sky.com virginmedia.com orange.fr free.fr laposte.net
wanadoo.fr t-online.de libero.it qq.com 163.com naver.com
""".split())

# Known disposable / throw-away address providers (a short, conservative list).
DISPOSABLE_MAIL = frozenset("""
mailinator.com guerrillamail.com 10minutemail.com tempmail.com temp-mail.org throwawaymail.com yopmail.com
trashmail.com sharklasers.com getnada.com dispostable.com maildrop.cc fakeinbox.com
""".split())

# UK postcode area (letters before the first digit) -> ITL1 region.
UK_POSTCODE_AREA_REGION = {
    **dict.fromkeys("E EC N NW SE SW W WC BR CR DA EN HA IG KT RM SM TW UB".split(), "London"),
    **dict.fromkeys("B CV DY WS WV ST TF WR HR".split(), "West Midlands"),
    **dict.fromkeys("M OL BL WN WA CH L PR BB FY LA CA CW SK".split(), "North West"),
    **dict.fromkeys("LS BD HX HD WF S DN HU YO HG".split(), "Yorkshire and The Humber"),
    **dict.fromkeys("NE SR DH DL TS".split(), "North East"),
    **dict.fromkeys("NG DE LE NN LN".split(), "East Midlands"),
    **dict.fromkeys("CB CM CO IP NR PE SG SS AL LU".split(), "East of England"),
    **dict.fromkeys("BN CT GU HP ME MK OX PO RG RH SL SO TN".split(), "South East"),
    **dict.fromkeys("BA BH BS DT EX GL PL SN SP TA TQ TR".split(), "South West"),
    **dict.fromkeys("CF LD LL NP SA SY".split(), "Wales"),
    **dict.fromkeys("AB DD DG EH FK G HS IV KA KW KY ML PA PH TD ZE".split(), "Scotland"),
    "BT": "Northern Ireland",
}

# US state -> Census region.
US_STATE_REGION = {
    **dict.fromkeys("CT ME MA NH RI VT NJ NY PA".split(), "Northeast"),
    **dict.fromkeys("IL IN MI OH WI IA KS MN MO NE ND SD".split(), "Midwest"),
    **dict.fromkeys("DE FL GA MD NC SC VA DC WV AL KY MS TN AR LA OK TX".split(), "South"),
    **dict.fromkeys("AZ CO ID MT NV NM UT WY AK CA HI OR WA".split(), "West"),
}

# City -> region, for sources that give a city but no postcode (largest cities only).
CITY_REGION = {
    "london": "London", "birmingham": "West Midlands", "manchester": "North West", "liverpool": "North West",
    "leeds": "Yorkshire and The Humber", "sheffield": "Yorkshire and The Humber", "bristol": "South West",
    "newcastle": "North East", "nottingham": "East Midlands", "leicester": "East Midlands", "glasgow": "Scotland",
    "edinburgh": "Scotland", "cardiff": "Wales", "belfast": "Northern Ireland", "brighton": "South East",
    "oxford": "South East", "cambridge": "East of England", "new york": "Northeast", "boston": "Northeast",
    "chicago": "Midwest", "houston": "South", "dallas": "South", "miami": "South", "atlanta": "South",
    "los angeles": "West", "san francisco": "West", "seattle": "West", "denver": "West",
}
