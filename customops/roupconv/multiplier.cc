#include "roupconv/multiplier.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <string>
#include <vector>

#include "common/kernel_info.h"

namespace axonnx::roupconv {
namespace {

std::string Strip(const std::string& text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  auto begin = std::find_if(text.begin(), text.end(), not_space);
  auto end = std::find_if(text.rbegin(), text.rend(), not_space).base();
  return begin < end ? std::string(begin, end) : std::string();
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// A small decimal number; longer digit strings are rejected rather than overflowing.
int SmallInt(const std::string& digits, const std::string& name) {
  if (digits.size() > 4) throw OpError("multiplier '" + name + "': the number " + digits + " is too large");
  return std::stoi(digits);
}

}  // namespace

Multiplier ParseMultiplier(const std::string& original) {
  // Same grammar as axonnx/multipliers/names.py (without the ROUP_L/M/H aliases: nodes carry
  // canonical names only).
  static const std::regex kRoup(
      R"(^ROUP\(\s*(\d+)\s*(?:,\s*(\d+)|;\s*r\s*=\s*(\d+(?:\s*/\s*\d+)*))\s*(?:;\s*N\s*=\s*(\d+))?\s*\)$)");
  static const std::regex kLut(R"(^LUT\(\s*([^(),;\s]+)\s*\)$)");
  static const std::regex kNumber(R"(\d+)");

  const std::string text = Strip(original);
  Multiplier m;
  m.name = text;
  if (Upper(text) == "SKIP") {
    m.kind = MultiplierKind::kSkip;
    return m;
  }
  std::smatch match;
  if (std::regex_match(text, match, kLut)) {
    m.kind = MultiplierKind::kLut;
    m.lut_name = match[1].str();
    return m;
  }
  if (!std::regex_match(text, match, kRoup)) {
    throw OpError("unknown multiplier '" + original +
                  "': use ROUP(P,R), ROUP(P,R;N=8), ROUP(P;r=a/b/..), SKIP or LUT(name)");
  }
  const int bits = match[4].matched ? SmallInt(match[4].str(), text) : kBits;
  if (bits != kBits) {
    throw OpError("multiplier '" + text + "': operands are 8-bit, so every multiplier needs N=8");
  }
  m.kind = MultiplierKind::kRoup;
  m.perforation = SmallInt(match[1].str(), text);
  if (m.perforation >= kNameDigits) {
    throw OpError("multiplier '" + text + "': perforation P=" + std::to_string(m.perforation) +
                  " must lie in [0, " + std::to_string(kNameDigits - 1) + "] for N=8");
  }
  std::vector<int> widths;
  if (match[2].matched) {
    const int rounding = SmallInt(match[2].str(), text);
    for (int j = m.perforation; j < kNameDigits; ++j) widths.push_back(std::max(0, rounding - 2 * j));
  } else {
    const std::string vec = match[3].str();
    for (auto it = std::sregex_iterator(vec.begin(), vec.end(), kNumber); it != std::sregex_iterator(); ++it) {
      widths.push_back(SmallInt(it->str(), text));
    }
    if (static_cast<int>(widths.size()) != kNameDigits - m.perforation) {
      throw OpError("multiplier '" + text + "': the rounding vector needs " +
                    std::to_string(kNameDigits - m.perforation) + " widths (r_" +
                    std::to_string(m.perforation) + "..r_" + std::to_string(kNameDigits - 1) + "), got " +
                    std::to_string(widths.size()));
    }
  }
  for (int r : widths) {
    if (r > kBits) {
      throw OpError("multiplier '" + text + "': rounding widths must lie in [0, 8], got " + std::to_string(r));
    }
  }
  for (int j = m.perforation; j < kNameDigits; ++j) m.width[j] = widths[j - m.perforation];
  return m;
}

}  // namespace axonnx::roupconv
