"""Column names, allowed values and schemas of the raw input contract and the clean tables.

Every module of the ETL uses these constants; no column name is spelled anywhere else.
"""

from __future__ import annotations

from pyspark.sql import types as T

# ---------------------------------------------------------------- raw input contract
RAW_EVENTS_DIR = "events"  # raw/events/dt=YYYY-MM-DD/*.jsonl[.gz]
RAW_ITEMS_DIR = "items"  # raw/items/*.jsonl
RAW_USERS_DIR = "users"  # raw/users/*.jsonl

EVENT_ID = "event_id"
USER_ID = "user_id"
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
TS = "ts"
SESSION_ID = "session_id"
QUERY = "query"
PRICE = "price"
DT = "dt"

TITLE = "title"
CATEGORY = "category"  # path a>b>c
BRAND = "brand"
SHOP_ID = "shop_id"
IMAGE_VEC = "image_vec"

AGE = "age"
GENDER = "gender"
REGION = "region"
SIGNUP_TS = "signup_ts"
FOLLOWS = "follows"

EVENT_TYPES = ("click", "view", "cart", "fav", "purchase")
CATEGORY_SEPARATOR = ">"
REQUIRED_EVENT_FIELDS = (EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE, TS)
REQUIRED_ITEM_FIELDS = (ITEM_ID,)
REQUIRED_USER_FIELDS = (USER_ID,)
MAX_ID_LENGTH = 128

# Every raw field is read as a string first, so a wrongly typed value is a quarantine reason,
# never a silently nulled column.
RAW_EVENT_FIELDS = (EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE, TS, SESSION_ID, QUERY, PRICE)
RAW_ITEM_FIELDS = (ITEM_ID, TITLE, CATEGORY, BRAND, SHOP_ID, PRICE, IMAGE_VEC)
RAW_USER_FIELDS = (USER_ID, AGE, GENDER, REGION, SIGNUP_TS, FOLLOWS)

# ---------------------------------------------------------------- bookkeeping columns
RAW_LINE = "raw_line"  # the untouched input line, kept in quarantine
SOURCE_FILE = "source_file"
REASON = "reason"
STAGE = "stage"  # events | items | users
RECORD_KEY = "record_key"
INGESTED_AT = "ingested_at"
SOURCE_DT = "source_dt"  # the raw events folder (dt=...) a record arrived in
SPLIT = "split"  # import/test_interactions: which held-out split (test, valid) a pair belongs to

# ---------------------------------------------------------------- quarantine reasons
R_INVALID_JSON = "invalid_json"
R_MISSING_FIELD = "missing_field:{field}"
R_BAD_TYPE = "bad_type:{field}"
R_UNKNOWN_EVENT_TYPE = "unknown_event_type"
R_BAD_TIMESTAMP = "unparseable_timestamp"
R_TS_OUT_OF_RANGE = "timestamp_out_of_range"
R_EMPTY_ID = "empty_id:{field}"
R_ID_TOO_LONG = "id_too_long:{field}"
R_BOT = "bot_user"
R_NEGATIVE_PRICE = "negative_price"

# ---------------------------------------------------------------- clean tables
CLEAN_EVENTS_SCHEMA = T.StructType(
    [
        T.StructField(EVENT_ID, T.StringType(), False),
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(ITEM_ID, T.StringType(), False),
        T.StructField(EVENT_TYPE, T.StringType(), False),
        T.StructField(TS, T.TimestampType(), False),
        T.StructField(SESSION_ID, T.StringType(), True),
        T.StructField(QUERY, T.StringType(), True),
        T.StructField(PRICE, T.DoubleType(), True),
        T.StructField(SOURCE_DT, T.StringType(), True),
        T.StructField(DT, T.StringType(), False),
    ]
)

CLEAN_ITEMS_SCHEMA = T.StructType(
    [
        T.StructField(ITEM_ID, T.StringType(), False),
        T.StructField(TITLE, T.StringType(), True),
        T.StructField(CATEGORY, T.StringType(), True),
        T.StructField(BRAND, T.StringType(), True),
        T.StructField(SHOP_ID, T.StringType(), True),
        T.StructField(PRICE, T.DoubleType(), True),
        T.StructField(IMAGE_VEC, T.ArrayType(T.FloatType(), True), True),
        T.StructField(INGESTED_AT, T.TimestampType(), True),
    ]
)

CLEAN_USERS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(AGE, T.IntegerType(), True),
        T.StructField(GENDER, T.StringType(), True),
        T.StructField(REGION, T.StringType(), True),
        T.StructField(SIGNUP_TS, T.TimestampType(), True),
        T.StructField(FOLLOWS, T.ArrayType(T.StringType(), True), True),
        T.StructField(INGESTED_AT, T.TimestampType(), True),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField(STAGE, T.StringType(), False),
        T.StructField(REASON, T.StringType(), False),
        T.StructField(RECORD_KEY, T.StringType(), True),
        T.StructField(RAW_LINE, T.StringType(), True),
        T.StructField(SOURCE_FILE, T.StringType(), True),
        T.StructField(DT, T.StringType(), False),
    ]
)

IMPORT_TEST_SCHEMA = T.StructType([T.StructField(c, T.StringType(), False) for c in (USER_ID, ITEM_ID, SPLIT)])
