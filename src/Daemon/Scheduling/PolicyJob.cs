using Quartz;
using Quartz.Extensibility;

namespace Backupd.Daemon.Scheduling;

/// <summary>The Quartz job of one policy: its key names the policy; the dispatcher does the work.</summary>
public sealed class PolicyJob(PolicyDispatcher dispatcher, CancellationToken stopping) : IJob
{
    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        if (context.JobDetail.Key.Group == PolicyScheduler.VerifyGroup)
            await dispatcher.VerifyAsync(context.JobDetail.Key.Name, linked.Token);
        else if (context.JobDetail.Key.Group == PolicyScheduler.DrillGroup)
            await dispatcher.DrillAsync(context.JobDetail.Key.Name, linked.Token);
        else
            await dispatcher.FireAsync(context.JobDetail.Key.Name, context.ScheduledFireTimeUtc ?? context.FireTimeUtc, linked.Token);
    }
}

/// <summary>Creates <see cref="PolicyJob"/>s bound to the daemon's dispatcher (Quartz would otherwise need a DI container).</summary>
public sealed class PolicyJobFactory(PolicyDispatcher dispatcher, CancellationToken stopping) : IJobFactory
{
    public ValueTask<JobScope> CreateJob(TriggerFiredBundle bundle, IScheduler scheduler, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new JobScope(new PolicyJob(dispatcher, stopping), null!));

    public ValueTask ReturnJob(JobScope scope, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
