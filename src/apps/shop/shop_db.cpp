#include "apps/shop/shop_db.h"

#include <sqlite3.h>

#include <ctime>
#include <random>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/random.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

namespace {

constexpr int kApplicationId = 0x4C465348;  // 'LFSH'
constexpr int kYear = 2026;                 // the shop's calendar year (the corpus names none)

// One prepared statement; binds text/integers by position, steps rows.
class Stmt {
public:
    Stmt(sqlite3* db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
            fail("shop database: cannot prepare '%.60s': %s", sql, sqlite3_errmsg(db));
    }
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt& bind(int i, const std::string& v) {
        sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& bind(int i, int64_t v) {
        sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    bool row() {
        const int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc != SQLITE_DONE) fail("shop database: %s", sqlite3_errmsg(db_));
        return false;
    }
    void run() {
        while (row()) {
        }
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    std::string text(int c) const {
        const unsigned char* t = sqlite3_column_text(s_, c);
        return t ? reinterpret_cast<const char*>(t) : "";
    }
    int64_t integer(int c) const { return sqlite3_column_int64(s_, c); }

private:
    sqlite3* db_;
    sqlite3_stmt* s_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string m = err ? err : "?";
        sqlite3_free(err);
        fail("shop database: %s", m.c_str());
    }
}

std::vector<std::string> json_list(const std::string& s) {
    std::vector<std::string> out;
    auto j = nlohmann::json::parse(s, nullptr, false);
    if (j.is_array())
        for (auto& v : j)
            if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}

std::string iso(int year, train::ShopDate d) {
    char b[16];
    std::snprintf(b, sizeof b, "%04d-%02d-%02d", year, d.month, d.day);
    return b;
}

// Search words a shop keeps for a product (what customers call it), from its name: the last
// word and its singular, and a few common names. Part of the shop's data, not of the tracker.
std::vector<std::string> aliases(const std::string& name) {
    static const std::vector<std::pair<std::string, std::vector<std::string>>> kCommon = {
        {"Classic Cotton T-Shirt", {"t-shirt", "tshirt", "tee"}},
        {"Slim Fit Jeans", {"jeans", "denim"}},
        {"Packable Rain Jacket", {"rain jacket", "raincoat"}},
        {"Merino Wool Sweater", {"sweater", "jumper", "merino sweater"}},
        {"Running Shoes", {"running shoes", "runners", "trainers"}},
        {"Canvas Sneakers", {"sneakers"}},
        {"Leather Ankle Boots", {"boots", "ankle boots"}},
        {"Wool Hiking Socks (3 pack)", {"socks", "hiking socks"}},
        {"Baseball Cap", {"cap"}},
        {"Knit Beanie", {"beanie"}},
        {"Canvas Tote Bag", {"tote", "tote bag"}},
        {"Ceramic Coffee Mug", {"mug", "coffee mug"}},
        {"Cast Iron Skillet", {"skillet", "frying pan"}},
        {"Bamboo Cutting Board", {"cutting board", "chopping board"}},
        {"Chef's Knife", {"knife", "chef's knife", "chefs knife"}},
        {"Glass Food Containers (set of 5)", {"food containers", "glass containers"}},
        {"Cotton Bath Towel", {"towel", "bath towel"}},
        {"Throw Blanket", {"throw blanket"}},
        {"Linen Bed Sheet Set", {"sheets", "bed sheets", "sheet set"}},
        {"Down Alternative Pillow", {"pillow"}},
        {"Scented Soy Candle", {"candle"}},
        {"LED Desk Lamp", {"lamp", "desk lamp"}},
        {"Ceramic Plant Pot", {"plant pot", "flower pot"}},
        {"Wireless Earbuds", {"earbuds", "earphones", "headphones"}},
        {"Bluetooth Speaker", {"speaker"}},
        {"USB-C Fast Charger", {"charger"}},
        {"Power Bank 10000 mAh", {"power bank", "powerbank"}},
        {"Phone Case", {"phone case", "phone cover"}},
        {"Laptop Sleeve", {"laptop sleeve"}},
        {"Smart Watch Band", {"watch band", "watch strap"}},
        {"Webcam HD", {"webcam", "web camera"}},
        {"Insulated Water Bottle", {"water bottle"}},
        {"Hiking Backpack 30L", {"backpack", "rucksack"}},
        {"Camping Lantern", {"lantern"}},
        {"Travel Hammock", {"hammock"}},
        {"Jigsaw Puzzle 1000 pieces", {"puzzle", "jigsaw"}},
        {"Wooden Building Blocks", {"building blocks", "wooden blocks"}},
        {"Plush Bear", {"teddy", "teddy bear", "plush bear"}},
        {"Board Game: Harbour Traders", {"board game", "harbour traders"}},
        {"Hardcover Notebook", {"notebook"}},
        {"Fountain Pen", {"fountain pen"}},
        {"Desk Organizer", {"desk organizer", "desk organiser"}},
        {"Watercolour Set", {"watercolours", "watercolors", "paints"}},
        {"Stainless Steel Lunch Box", {"lunch box", "lunchbox"}},
        {"Electric Kettle", {"kettle"}},
        {"Silk Pillowcase", {"pillowcase"}},
        {"Reading Glasses", {"reading glasses", "glasses"}},
        {"Sunglasses", {"sunglasses", "shades"}},
        {"Umbrella", {"umbrella"}},
        {"Dog Leash", {"leash", "dog lead"}},
        {"Cat Scratching Post", {"scratching post"}},
        {"Pet Bed", {"pet bed", "dog bed"}},
        {"Bird Feeder", {"bird feeder"}},
        {"Everyday Hoodie", {"hoodie", "hoody"}},
        {"Linen Button Shirt", {"linen shirt", "button shirt"}},
        {"Leather Wallet", {"wallet"}},
        {"French Press", {"french press", "cafetiere"}},
        {"Yoga Mat", {"yoga mat"}},
        {"Picnic Blanket", {"picnic blanket"}},
        {"Wall Clock", {"clock", "wall clock"}},
    };
    for (const auto& [n, a] : kCommon)
        if (n == name) return a;
    return {};
}

const char* kSchema = R"SQL(
CREATE TABLE customers(id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, address TEXT NOT NULL);
CREATE TABLE products(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL, material TEXT NOT NULL,
  price_cents INTEGER NOT NULL, sizes TEXT NOT NULL, colours TEXT NOT NULL, washable INTEGER NOT NULL, aliases TEXT NOT NULL);
CREATE TABLE orders(id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
  status TEXT NOT NULL CHECK(status IN ('processing', 'shipped')), ordered TEXT NOT NULL, shipped TEXT NOT NULL,
  eta TEXT NOT NULL, carrier TEXT NOT NULL, tracking TEXT NOT NULL, address TEXT NOT NULL, payment TEXT NOT NULL,
  total_cents INTEGER NOT NULL);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE TABLE order_items(order_id TEXT NOT NULL REFERENCES orders(id), product_id INTEGER NOT NULL REFERENCES products(id),
  size TEXT NOT NULL, colour TEXT NOT NULL, qty INTEGER NOT NULL, price_cents INTEGER NOT NULL);
CREATE INDEX items_by_order ON order_items(order_id);
CREATE TABLE policies(topic TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE articles(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE discount_codes(code TEXT PRIMARY KEY, percent INTEGER NOT NULL, min_order_cents INTEGER NOT NULL,
  expires TEXT NOT NULL, once_per_account INTEGER NOT NULL);
CREATE TABLE sessions(id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), created TEXT NOT NULL);
CREATE INDEX sessions_by_customer ON sessions(customer_id);
CREATE TABLE session_turns(session_id TEXT NOT NULL REFERENCES sessions(id), idx INTEGER NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user', 'tool', 'assistant')), content TEXT NOT NULL, state TEXT NOT NULL,
  generated TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY(session_id, idx));
)SQL";

sqlite3* open_db(const std::string& path, int flags) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
        std::string m = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        fail("shop database %s: cannot open (%s)", path.c_str(), m.c_str());
    }
    sqlite3_busy_timeout(db, 2000);
    return db;
}

int pragma_int(sqlite3* db, const char* name) {
    Stmt s(db, (std::string("PRAGMA ") + name).c_str());
    return s.row() ? static_cast<int>(s.integer(0)) : 0;
}

}  // namespace

void ShopDb::init(const std::string& path, const ShopInitOptions& o, bool overwrite) {
    if (o.customers < 1 || o.orders < 1 || o.orders > 100000)
        fail("shop init: --customers %lld and --orders %lld, expected >= 1 and 1..100000 orders", (long long)o.customers,
             (long long)o.orders);
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
        if (!overwrite) fail("shop init: %s already exists (hint: --force replaces it)", path.c_str());
        if (!S_ISREG(st.st_mode)) fail("shop init: %s is not a regular file", path.c_str());
    }
    // Built in a temporary file renamed over `path` at the end: an interrupted init leaves no half database.
    const std::string tmp = path + ".tmp";
    std::remove(tmp.c_str());
    sqlite3* db = open_db(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    try {
        exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;");
        exec(db, kSchema);
        // Products: the corpus's catalogue.
        const auto& cat = train::shop_catalogue();
        {
            Stmt ins(db, "INSERT INTO products VALUES(?,?,?,?,?,?,?,?,?)");
            for (size_t i = 0; i < cat.size(); ++i) {
                const auto& p = cat[i];
                ins.bind(1, static_cast<int64_t>(i + 1)).bind(2, p.name).bind(3, p.category).bind(4, p.material)
                    .bind(5, static_cast<int64_t>(p.price_cents)).bind(6, nlohmann::json(p.sizes).dump())
                    .bind(7, nlohmann::json(p.colours).dump()).bind(8, static_cast<int64_t>(p.washable))
                    .bind(9, nlohmann::json(aliases(p.name)).dump());
                ins.run();
            }
        }
        // Customers: names, emails and addresses drawn from the corpus's lists with their own stream.
        static const std::vector<std::string> kSurnames = {"Adler", "Baker", "Chen", "Dubois", "Evans", "Fischer",
                                                           "Garcia", "Haddad", "Ito", "Jensen", "Kowalski", "Larsen",
                                                           "Moreau", "Novak", "Okafor", "Patel", "Quist", "Rossi",
                                                           "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Young"};
        std::vector<std::string> cust_address(static_cast<size_t>(o.customers));
        {
            Stmt ins(db, "INSERT INTO customers VALUES(?,?,?,?)");
            uint64_t s = o.seed * 0x9e3779b97f4a7c15ull + 0x5eed;
            for (int64_t c = 0; c < o.customers; ++c) {
                const std::string first = train::shop_names()[splitmix64(s) % train::shop_names().size()];
                const std::string last = kSurnames[splitmix64(s) % kSurnames.size()];
                char id[16];
                std::snprintf(id, sizeof id, "U%05lld", (long long)(c + 1));
                std::string email = first + "." + last + std::to_string(c + 1) + "@example.com";
                for (char& ch : email) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                cust_address[c] = std::to_string(2 + splitmix64(s) % 998) + " " +
                                  train::shop_streets()[splitmix64(s) % train::shop_streets().size()] + ", " +
                                  train::shop_cities()[splitmix64(s) % train::shop_cities().size()];
                ins.bind(1, std::string(id)).bind(2, first + " " + last).bind(3, email).bind(4, cust_address[c]);
                ins.run();
            }
        }
        // Orders: dialogue n's order, for n = 0, 1, ... until o.orders distinct ids; customer by its own draw.
        {
            Stmt ins(db, "INSERT INTO orders VALUES(?,?,?,?,?,?,?,?,?,?,?)");
            Stmt item(db, "INSERT INTO order_items VALUES(?,?,?,?,?,?)");
            std::set<std::string> seen;
            for (uint64_t n = 0; static_cast<int64_t>(seen.size()) < o.orders; ++n) {
                const train::ShopOrder so = train::shop_order(o.seed, n);
                if (!seen.insert(so.id).second) continue;
                uint64_t s = o.seed ^ (n * 0xd1b54a32d192ed03ull) ^ 0xc0ffee;
                const int64_t c = static_cast<int64_t>(splitmix64(s) % static_cast<uint64_t>(o.customers));
                char cid[16];
                std::snprintf(cid, sizeof cid, "U%05lld", (long long)(c + 1));
                // Dates wrap into the next year when the month goes back (December into January).
                const int y_ship = kYear + (so.shipped.month < so.ordered.month);
                const int y_eta = y_ship + (so.eta.month < so.shipped.month);
                ins.bind(1, so.id).bind(2, std::string(cid)).bind(3, std::string(so.has_shipped ? "shipped" : "processing"))
                    .bind(4, iso(kYear, so.ordered)).bind(5, iso(y_ship, so.shipped)).bind(6, iso(y_eta, so.eta))
                    .bind(7, so.carrier).bind(8, so.tracking).bind(9, cust_address[c]).bind(10, so.payment)
                    .bind(11, static_cast<int64_t>(so.total_cents));
                ins.run();
                const int64_t pid = so.product - cat.data() + 1;
                item.bind(1, so.id).bind(2, pid).bind(3, so.size).bind(4, so.colour).bind(5, static_cast<int64_t>(so.qty))
                    .bind(6, static_cast<int64_t>(so.product->price_cents));
                item.run();
            }
        }
        {
            Stmt ins(db, "INSERT INTO policies VALUES(?,?)");
            for (const auto& [t, x] : train::shop_policy_texts()) ins.bind(1, t).bind(2, x).run();
            Stmt art(db, "INSERT INTO articles(title, body) VALUES(?,?)");
            for (const auto& [t, x] : train::shop_article_texts()) art.bind(1, t).bind(2, x).run();
            // The corpus's codes with the rules its assistant gives for them.
            Stmt dc(db, "INSERT INTO discount_codes VALUES(?,?,?,?,?)");
            const int64_t pct[] = {10, 15, 20, 0, 5}, min_cents[] = {5000, 0, 5000, 5000, 0}, once[] = {0, 1, 0, 0, 1};
            const char* expires[] = {"2026-12-31", "2027-06-30", "2026-05-31", "2026-12-31", "2027-12-31"};
            for (size_t i = 0; i < train::shop_discount_codes().size() && i < 5; ++i)
                dc.bind(1, train::shop_discount_codes()[i]).bind(2, pct[i]).bind(3, min_cents[i])
                    .bind(4, std::string(expires[i])).bind(5, once[i]).run();
        }
        exec(db, ("PRAGMA application_id=" + std::to_string(kApplicationId) + "; PRAGMA user_version=" +
                  std::to_string(kShopSchemaVersion) + "; COMMIT;")
                     .c_str());
    } catch (...) {
        sqlite3_close(db);
        std::remove(tmp.c_str());
        throw;
    }
    sqlite3_close(db);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail("shop init: cannot create %s", path.c_str());
    }
}

std::vector<std::string> product_aliases(const std::string& name) { return aliases(name); }

ShopDb::ShopDb(const std::string& path) : path_(path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0)
        fail("shop database %s: no such file (hint: llmforge shop init --db %s)", path.c_str(), path.c_str());
    db_ = open_db(path, SQLITE_OPEN_READWRITE);
    try {
        // A non-SQLite file fails the first query.
        char* err = nullptr;
        if (sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, &err) != SQLITE_OK) {
            std::string m = err ? err : "?";
            sqlite3_free(err);
            fail("shop database %s: not an SQLite database (%s) (hint: llmforge shop init --db FILE makes one)",
                 path.c_str(), m.c_str());
        }
        const int app = pragma_int(db_, "application_id"), ver = pragma_int(db_, "user_version");
        if (app != kApplicationId)
            fail("shop database %s: not a shop database (application_id %d, expected %d) (hint: llmforge shop init --db "
                 "FILE makes one)",
                 path.c_str(), app, kApplicationId);
        if (ver != kShopSchemaVersion)
            fail("shop database %s: schema version %d, expected %d (hint: rebuild it with llmforge shop init --force)",
                 path.c_str(), ver, kShopSchemaVersion);
        // Sessions are written while the server reads: WAL lets readers go on during a write, and a
        // second process (llmforge chat beside the server) waits for the lock instead of failing.
        sqlite3_busy_timeout(db_, 5000);
        exec(db_, "PRAGMA journal_mode=WAL");
    } catch (...) {
        sqlite3_close(db_);
        throw;
    }
}

ShopDb::~ShopDb() { sqlite3_close(db_); }

namespace {

const char* kOrderSelect =
    "SELECT o.id, o.customer_id, c.name, o.status, o.ordered, o.shipped, o.eta, o.carrier, o.tracking, o.address, "
    "o.payment, o.total_cents FROM orders o JOIN customers c ON c.id = o.customer_id ";

OrderRecord order_row(sqlite3* db, const Stmt& s) {
    OrderRecord r;
    r.id = s.text(0), r.customer_id = s.text(1), r.customer_name = s.text(2), r.status = s.text(3);
    r.ordered = s.text(4), r.shipped = s.text(5), r.eta = s.text(6), r.carrier = s.text(7), r.tracking = s.text(8);
    r.address = s.text(9), r.payment = s.text(10), r.total_cents = s.integer(11);
    Stmt it(db,
            "SELECT p.name, i.size, i.colour, i.qty, i.price_cents FROM order_items i JOIN products p ON p.id = i.product_id "
            "WHERE i.order_id = ? ORDER BY i.rowid");
    it.bind(1, r.id);
    while (it.row()) r.items.push_back({it.text(0), it.text(1), it.text(2), it.integer(3), it.integer(4)});
    return r;
}

ProductRecord product_row(const Stmt& s) {
    ProductRecord p;
    p.name = s.text(0), p.category = s.text(1), p.material = s.text(2), p.price_cents = s.integer(3);
    p.sizes = json_list(s.text(4)), p.colours = json_list(s.text(5)), p.washable = s.integer(6) != 0;
    p.aliases = json_list(s.text(7));
    return p;
}

}  // namespace

std::optional<OrderRecord> ShopDb::order(const std::string& id) const {
    Stmt s(db_, (std::string(kOrderSelect) + "WHERE o.id = ?").c_str());
    s.bind(1, id);
    if (!s.row()) return std::nullopt;
    return order_row(db_, s);
}

std::vector<OrderRecord> ShopDb::orders_of(const std::string& customer_id) const {
    Stmt s(db_, (std::string(kOrderSelect) + "WHERE o.customer_id = ? ORDER BY o.ordered, o.id").c_str());
    s.bind(1, customer_id);
    std::vector<OrderRecord> out;
    while (s.row()) out.push_back(order_row(db_, s));
    return out;
}

std::optional<CustomerRecord> ShopDb::customer(const std::string& id) const {
    Stmt s(db_, "SELECT id, name, email, address FROM customers WHERE id = ?");
    s.bind(1, id);
    if (!s.row()) return std::nullopt;
    return CustomerRecord{s.text(0), s.text(1), s.text(2), s.text(3)};
}

std::vector<CustomerRecord> ShopDb::customers() const {
    Stmt s(db_, "SELECT id, name, email, address FROM customers ORDER BY id");
    std::vector<CustomerRecord> out;
    while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
    return out;
}

std::vector<ProductRecord> ShopDb::products() const {
    Stmt s(db_, "SELECT name, category, material, price_cents, sizes, colours, washable, aliases FROM products ORDER BY id");
    std::vector<ProductRecord> out;
    while (s.row()) out.push_back(product_row(s));
    return out;
}

std::optional<ProductRecord> ShopDb::product(const std::string& name) const {
    Stmt s(db_, "SELECT name, category, material, price_cents, sizes, colours, washable, aliases FROM products WHERE name = ?");
    s.bind(1, name);
    if (!s.row()) return std::nullopt;
    return product_row(s);
}

std::vector<std::pair<std::string, std::string>> ShopDb::policies() const {
    Stmt s(db_, "SELECT topic, text FROM policies ORDER BY rowid");
    std::vector<std::pair<std::string, std::string>> out;
    while (s.row()) out.emplace_back(s.text(0), s.text(1));
    return out;
}

std::vector<Article> ShopDb::articles() const {
    Stmt s(db_, "SELECT id, title, body FROM articles ORDER BY id");
    std::vector<Article> out;
    while (s.row()) out.push_back({s.integer(0), s.text(1), s.text(2)});
    return out;
}

std::vector<std::string> ShopDb::orders_with_digits(const std::string& digits) const {
    Stmt s(db_, "SELECT id FROM orders WHERE substr(id, 2) = ? ORDER BY id");
    s.bind(1, digits);
    std::vector<std::string> out;
    while (s.row()) out.push_back(s.text(0));
    return out;
}

int64_t ShopDb::count(const char* table) const {
    static const std::set<std::string> kTables = {"customers", "products", "orders", "order_items", "policies", "articles",
                                                  "discount_codes"};
    if (!kTables.count(table)) fail("shop database: no table '%s'", table);
    Stmt s(db_, (std::string("SELECT count(*) FROM ") + table).c_str());
    return s.row() ? s.integer(0) : 0;
}

std::string normalize_order_id(const std::string& s) {
    // A letter standing alone (not the end of a word) before 5 digits, with an optional '#', '-' or
    // space; or 5 digits after "order" (with "number", "no", "#", "is" between). Case-insensitive.
    static const std::regex kLettered(R"((?:^|[^A-Za-z0-9])#?\s?([A-Za-z])\s?-?\s?([0-9]{5})(?![0-9]))");
    static const std::regex kBare(R"(\border\s*(?:number|num|no\.?|nr\.?)?\s*(?:is\s*)?[#:]?\s*([0-9]{5})(?![0-9]))",
                                  std::regex::icase);
    std::string best;
    std::ptrdiff_t best_pos = -1;
    for (std::sregex_iterator it(s.begin(), s.end(), kLettered), end; it != end; ++it)
        if (it->position(2) > best_pos)
            best_pos = it->position(2),
            best = std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>((*it)[1].str()[0])))) +
                   (*it)[2].str();
    for (std::sregex_iterator it(s.begin(), s.end(), kBare), end; it != end; ++it)
        if (it->position(1) > best_pos) best_pos = it->position(1), best = "C" + (*it)[1].str();
    return best;
}


std::string ShopDb::create_session(const std::string& customer_id) {
    if (!customer(customer_id))
        fail("shop session: unknown customer '%s' (hint: llmforge shop order ID shows an order's customer)",
             customer_id.c_str());
    // 16 hex digits from the kernel's generator: a session id is a bearer of its history, so not guessable.
    std::random_device rd;
    char id[20];
    std::snprintf(id, sizeof id, "s%08x%08x", rd(), rd());
    const std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    Stmt(db_, "INSERT INTO sessions(id, customer_id, created) VALUES(?,?,?)").bind(1, id).bind(2, customer_id).bind(3, when).run();
    return id;
}

std::optional<SessionRecord> ShopDb::session(const std::string& id) const {
    Stmt s(db_, "SELECT id, customer_id, created, (SELECT count(*) FROM session_turns t WHERE t.session_id = s.id) "
                "FROM sessions s WHERE id = ?");
    s.bind(1, id);
    if (!s.row()) return std::nullopt;
    return SessionRecord{s.text(0), s.text(1), s.text(2), s.integer(3)};
}

std::vector<SessionRecord> ShopDb::sessions_of(const std::string& customer_id) const {
    Stmt s(db_, "SELECT id, customer_id, created, (SELECT count(*) FROM session_turns t WHERE t.session_id = s.id) "
                "FROM sessions s WHERE customer_id = ? ORDER BY s.rowid");
    s.bind(1, customer_id);
    std::vector<SessionRecord> out;
    while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2), s.integer(3)});
    return out;
}

std::vector<SessionTurn> ShopDb::session_turns(const std::string& id) const {
    Stmt s(db_, "SELECT role, content, state, generated, info FROM session_turns WHERE session_id = ? ORDER BY idx");
    s.bind(1, id);
    std::vector<SessionTurn> out;
    while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)});
    return out;
}

void ShopDb::append_turns(const std::string& id, const std::vector<SessionTurn>& turns) {
    // One transaction: a crash keeps all of an exchange or none of it.
    exec(db_, "BEGIN IMMEDIATE");
    try {
        Stmt next(db_, "SELECT coalesce(max(idx) + 1, 0) FROM session_turns WHERE session_id = ?");
        next.bind(1, id);
        int64_t idx = next.row() ? next.integer(0) : 0;
        Stmt ins(db_, "INSERT INTO session_turns(session_id, idx, role, content, state, generated, info) VALUES(?,?,?,?,?,?,?)");
        for (const auto& t : turns)
            ins.bind(1, id).bind(2, idx++).bind(3, t.role).bind(4, t.content).bind(5, t.state).bind(6, t.generated).bind(7, t.info).run();
        exec(db_, "COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

std::optional<train::ShopDate> shop_date_of_iso(const std::string& iso) {
    int y = 0, m = 0, d = 0;
    if (std::sscanf(iso.c_str(), "%d-%d-%d", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
    return train::ShopDate{m, d};
}

}  // namespace llmforge::apps
