// `moeq fit --target`'s budget agrees with the planner: a file within the budget whose always-on tensors fit the fast
// tier is planned as fitting, with nothing streamed from disk; a file larger than the budget is not planned to fit
// without disk (or at all).
import Foundation
import HardwarePlanner
import ModelCatalog
import OutputPlanning
import QuantKernels
import Testing

@Test(arguments: ["kimi-k2.5", "deepseek-v3", "qwen3-235b-a22b", "qwen3-30b-a3b", "mixtral-8x22b"])
func fitBudgetAgreesWithThePlanner(model: String) throws {
    let catalog = try HardwareCatalog.bundled()
    let spec = try ModelSpec(config: try #require(ModelPresets.named(model)).config)
    var within = 0, beyond = 0
    for name in ["rtx4090+256gb", "2x3090+128gb-ddr4", "rtx4090+512gb-2x8ch-ddr5-4800", "384gb-12ch-ddr5-4800", "m3-ultra-512gb"] {
        let target = try catalog.target(name)
        for context in [4096, 32768] {
            let budget = FitBudget.of(spec: spec, target: target, context: context)
            #expect(budget.kvBytes == KVCache.bytes(spec, context: context, cacheType: .f16))
            for recipe in [RecipeName.q8_0, .q6_K, .q4_K_M, .q3_K_M, .q2_K, .iq2_xxs, .iq1_m] {
                let footprint = try Footprint.of(spec: spec, recipe: recipe)
                let plan = Planner.plan(footprint, spec: spec, target: target, context: context)
                if footprint.fileBytes <= budget.totalBytes && footprint.alwaysOnBytes <= max(budget.fastBytes, 0)
                    && (budget.fastBytes > 0 || target.gpus.isEmpty)
                {
                    within += 1
                    #expect(plan.verdict == .fits && plan.diskBytes == 0, "\(model) \(recipe.rawValue) on \(name) at \(context)")
                } else if footprint.fileBytes > budget.totalBytes + budget.kvBytes {
                    beyond += 1
                    #expect(plan.verdict != .fits, "\(model) \(recipe.rawValue) on \(name) at \(context): over the budget yet fits")
                }
            }
        }
    }
    #expect(within > 0 || beyond > 0)
}
